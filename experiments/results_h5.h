// The image store of experiment results (HDF5): reference images, masks and every inpainted
// sample as uint8 datasets, chunked and deflate-compressed, addressed by path from SQLite rows.
//
// Layout (paths are stored in the sample rows of results_db.h):
//   /references/<dataset key>/<image index>   uint8 [H,W,C]   the image as the model saw it
//   /masks/<mask key>/<image index>           uint8 [H,W,1]   255 = known pixel, 0 = unknown
//   /samples/<cell key>/<image index>_<sample index>   uint8 [H,W,C]
// Pixels are round((x + 1) * 127.5) of the [-1,1] tensors, as write_image does for PNG files.
// One process writes a file at a time (HDF5 is not safe for concurrent writers; shards use
// their own files).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

namespace copaint {

class ResultsH5 {
 public:
  enum class Mode {
    kRead,   ///< the file must exist; read only
    kWrite,  ///< opened for writing, created when missing
  };
  /// Opens `path`; throws InputError naming it when it cannot be opened or created.
  ResultsH5(const std::string& path, Mode mode);
  ~ResultsH5();
  ResultsH5(const ResultsH5&) = delete;
  ResultsH5& operator=(const ResultsH5&) = delete;

  const std::string& path() const { return path_; }

  /// Stores a [C,H,W] image in [-1,1] as uint8 [H,W,C] at `dataset` (groups created as needed),
  /// replacing a dataset already there.
  void write_image(const std::string& dataset, const at::Tensor& image);
  /// Stores a [1,H,W] mask (1 = known) as uint8 [H,W,1], 255 = known.
  void write_mask(const std::string& dataset, const at::Tensor& mask);
  /// Stores a uint8 [H,W,C] tensor as it is.
  void write_uint8(const std::string& dataset, const at::Tensor& hwc);

  /// Sets attributes of the dataset or group at `path` (replacing ones of the same name):
  /// strings as variable-length UTF-8 strings, integers as int64 (h5py reads str and int).
  void set_attributes(const std::string& path, const std::map<std::string, std::string>& text,
                      const std::map<std::string, int64_t>& integers = {});

  bool contains(const std::string& dataset) const;
  /// The uint8 [H,W,C] tensor at `dataset`; InputError naming the file and path when absent.
  at::Tensor read_uint8(const std::string& dataset) const;
  /// read_uint8 as a [C,H,W] float tensor in [-1,1].
  at::Tensor read_image(const std::string& dataset) const;
  /// A mask as [1,H,W] float, 1 = known.
  at::Tensor read_mask(const std::string& dataset) const;

  /// Copies `dataset` of `other` into this file under the same path (replacing one there).
  void copy_from(const ResultsH5& other, const std::string& dataset);

  /// Writes everything buffered to the file (H5Fflush).
  void flush();

 private:
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

/// [C,H,W] in [-1,1] -> uint8 [H,W,C] (clamped, round((x + 1) * 127.5)).
at::Tensor image_to_uint8(const at::Tensor& image);

/// uint8 [H,W,C] -> [C,H,W] float in [-1,1].
at::Tensor uint8_to_image(const at::Tensor& hwc);

}  // namespace copaint
