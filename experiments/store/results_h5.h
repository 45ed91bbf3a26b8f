// The image store of experiment results (HDF5): reference images, masks and every inpainted
// sample as uint8 datasets, chunked and deflate-compressed, addressed by path from SQLite rows.
//
// Layout (paths are stored in the sample rows of results_db.h):
//   /references/<dataset key>/<image index>   uint8 [H,W,C]   the image as the model saw it
//   /masks/<mask key>/<image index>           uint8 [H,W,1]   1 = known pixel, 0 = unknown
//                                             (files written before 2026-12 hold 255 = known)
//   /samples/<cell key>/<image index>_<sample index>   uint8 [H,W,C]
// Pixels are round((x + 1) * 127.5) of the [-1,1] tensors, as write_image does for PNG files.
// One process writes a file at a time (HDF5 is not safe for concurrent writers; shards use
// their own files).
//
// Errors: every HDF5 call is checked; a failure is an InputError naming the file, the dataset
// and the system's reason ("No space left on device"); HDF5's own error printing is off. After a
// failed write or close the object is broken: it is never written or closed again (HDF5 crashes
// on a second close of such a file), and the destructor never throws.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/core/input_hash.h"  // image_to_uint8, uint8_to_image

namespace copaint {

class ResultsH5 {
 public:
  enum class Mode {
    kRead,   ///< the file must exist; read only
    kWrite,  ///< opened for writing, created when missing
  };
  /// Opens `path`; throws InputError naming it when it cannot be opened or created.
  ResultsH5(const std::string& path, Mode mode);
  /// Closes the file when it is open and not broken; never throws (call close() to check).
  ~ResultsH5();
  ResultsH5(const ResultsH5&) = delete;
  ResultsH5& operator=(const ResultsH5&) = delete;

  const std::string& path() const { return path_; }

  /// Stores a [C,H,W] image in [-1,1] as uint8 [H,W,C] at `dataset` (groups created as needed),
  /// replacing a dataset already there.
  void write_image(const std::string& dataset, const at::Tensor& image);
  /// Stores a [1,H,W] mask (1 = known) as uint8 [H,W,1] of 0/1.
  void write_mask(const std::string& dataset, const at::Tensor& mask);
  /// Stores a uint8 [H,W,C] tensor as it is.
  void write_uint8(const std::string& dataset, const at::Tensor& hwc);
  /// Stores a [C,H,W] image as float32 [H,W,C], values unchanged (the samples' exact output).
  void write_float(const std::string& dataset, const at::Tensor& image);

  /// Sets attributes of the dataset or group at `path` (replacing ones of the same name):
  /// strings as variable-length UTF-8 strings, integers as int64 (h5py reads str and int).
  void set_attributes(const std::string& path, const std::map<std::string, std::string>& text,
                      const std::map<std::string, int64_t>& integers = {});

  /// The path of every dataset in the file ("/samples/<cell>/0_1", ...), as far as it can be
  /// walked.
  std::vector<std::string> datasets() const;
  /// Whether a link named `dataset` exists (the dataset itself may still be damaged).
  bool contains(const std::string& dataset) const;
  /// Whether `dataset` exists, is [H,W,C] uint8 and reads back whole (compressed chunks are
  /// checksummed by deflate): false for a missing, half-written or damaged dataset.
  bool readable(const std::string& dataset) const;
  /// The uint8 [H,W,C] tensor at `dataset`; InputError naming the file and path when absent.
  at::Tensor read_uint8(const std::string& dataset) const;
  /// read_uint8 as a [C,H,W] float tensor in [-1,1].
  at::Tensor read_image(const std::string& dataset) const;
  /// The float32 [H,W,C] dataset at `dataset` (write_float) as a [C,H,W] float tensor.
  at::Tensor read_float(const std::string& dataset) const;
  /// A mask as [1,H,W] float, 1 = known (stored as 0/1, or 0/255 by older versions).
  at::Tensor read_mask(const std::string& dataset) const;

  /// Copies `dataset` of `other` into this file under the same path (replacing one there).
  void copy_from(const ResultsH5& other, const std::string& dataset);

  /// copy_from for salvaging: false, with nothing copied and the file still usable, when HDF5
  /// cannot copy the dataset (a damaged attribute) or it is already there.
  bool try_copy_from(const ResultsH5& other, const std::string& dataset);

  /// Writes everything buffered to the file (H5Fflush).
  void flush();
  /// Flushes and closes the file; InputError when that fails (a full disk). Later calls do
  /// nothing; reads and writes after it fail.
  void close();

 private:
  void write_hwc(const std::string& dataset, const at::Tensor& hwc);  ///< uint8 or float32
  at::Tensor read_hwc(const std::string& dataset, bool as_float) const;
  [[noreturn]] void fail(const std::string& what);
  void check_writable(const std::string& what) const;
  struct Impl;
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

struct SalvageSummary {
  int64_t kept = 0;     ///< datasets read back whole and copied
  int64_t dropped = 0;  ///< datasets that could not be read (left out)
};
/// Rebuilds `path` from what reads back: every dataset of it that reads whole is copied (with
/// its attributes) into a new file beside it, which is synced and renamed over `path`. For a
/// file whose last writer was killed or hit a full disk (HDF5 has no journal: its free-space
/// and end-of-file records may be stale, and later writes could land on stored data).
/// InputError when `path` cannot be opened or the new file cannot be written (`path` is then
/// left as it was).
SalvageSummary salvage_h5(const std::string& path);

}  // namespace copaint
