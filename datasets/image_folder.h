// Image-folder datasets with the reference's file order and preprocessing: `folder` (any
// directory), `celebahq` (LaMa's CelebA-HQ visual_test_source_256, first 100) and `imagenet100`
// (the reference's 100 ImageNet images with class labels). Decoding goes through
// read_image_file (datasets/image_file.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace copaint {

/// How an image is brought to size x size.
enum class FolderPreprocess {
  kResize,      ///< Pillow bicubic resize to size x size (the reference's CelebA-HQ `normalize`)
  kCenterCrop,  ///< guided-diffusion center_crop_arr (the reference's ImageNet loader)
  kNone,        ///< keep the file's size (every image must then be size x size)
};

/// "resize" | "center_crop" | "none"; UsageError otherwise.
FolderPreprocess parse_folder_preprocess(const std::string& name);

struct ImageFolderParams {
  std::string root;      ///< folder searched recursively for jpg/jpeg/png/gif files
  int64_t start = 0;     ///< first file (in sorted order) of the dataset
  int64_t count = -1;    ///< number of files from `start`, -1 = all the rest
  int64_t size = 256;    ///< output side
  int64_t channels = 3;  ///< 3 = RGB, 1 = grey (Pillow's luma)
  FolderPreprocess preprocess = FolderPreprocess::kResize;
  bool allow_upscale = false;  ///< accept images whose short side is below `size`
  /// Item id from the file path; default: the file name without extension.
  std::function<std::string(const std::string& path)> id_of;
  /// Class label from the file path; default: -1.
  std::function<int64_t(const std::string& path)> label_of;
};

/// A sorted slice of an image folder. The file list is fixed at construction (InputError for a
/// missing root, an empty folder or `start` past the end); get() decodes and preprocesses one
/// image, throwing InputError naming the file when it is unreadable, corrupt or too small.
class ImageFolderDataset : public Dataset {
 public:
  explicit ImageFolderDataset(ImageFolderParams params);
  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  ImageItem get(int64_t index) const override;
  const std::vector<std::string>& files() const { return files_; }

  /// The preprocessing alone, on a decoded uint8 [H,W,C] image: [C,size,size] float in [-1,1]
  /// computed as the reference does (x / 255 * 2 - 1 in float32). `name` is used in errors.
  static at::Tensor preprocess(const at::Tensor& hwc_u8, const ImageFolderParams& params,
                               const std::string& name);

 private:
  ImageFolderParams params_;
  std::vector<std::string> files_;
};

/// The reference's CelebA-HQ item id: the file stem as a 5-digit number ("%05d"), or the stem
/// itself when it is not a number.
std::string celebahq_id(const std::string& path);
/// The reference's ImageNet item id: the stem's last '_'-separated field as "%05d".
std::string imagenet_id(const std::string& path);

/// Reads a flat JSON object of string keys and integer values (the reference's
/// `val_label.json`). Throws InputError naming the file on anything else.
std::map<std::string, int64_t> read_label_json(const std::string& path);

/// `celebahq` root resolution: `root/visual_test_source_256` when that folder exists (root = the
/// reference's `datasets/lama-celeba`), else `root` itself.
std::string celebahq_image_dir(const std::string& root);

/// `imagenet100`: images in `root/test` when it exists (else `root`), labels from
/// `root/val_label.json` (else `root/../val_label.json`); keys are file names with "_val_",
/// which the reference maps to the images' "_test_" names.
struct ImageNet100Layout {
  std::string image_dir;
  std::string label_file;
};
ImageNet100Layout imagenet100_layout(const std::string& root);

}  // namespace copaint
