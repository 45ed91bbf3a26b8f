// The bundled dataset: Fashion-MNIST (Zalando Research, MIT licence) from Debian's
// `dataset-fashion-mnist` package (gzipped IDX files), 28x28 grey padded to 32x32 and by default
// replicated to 3 channels, as the project's fixtures and bundled model use it.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "datasets/dataset.h"

namespace copaint {

/// Where Debian installs the files.
constexpr const char* kFashionMnistDefaultRoot = "/usr/share/datasets/fashion-mnist";

/// One IDX file (optionally gzip-compressed, detected by its magic bytes) as a uint8 tensor of the
/// file's shape. Only unsigned-byte IDX data is accepted. Throws InputError naming the file when it
/// is missing, truncated or malformed.
at::Tensor read_idx_file(const std::string& path);

struct FashionMnistParams {
  std::string root = kFashionMnistDefaultRoot;  ///< folder with the four *-ubyte.gz files
  std::string split = "test";                   ///< "test" (t10k, 10000 images) or "train" (60000)
  int64_t start = 0;                            ///< first image of the slice
  int64_t count = -1;                           ///< images from `start`, -1 = all the rest
  int64_t size = 32;     ///< output side: >= 28 pads with background (-1), < 28 resizes
  int64_t channels = 3;  ///< 1 = grey, 3 = grey replicated to RGB
};

/// Fashion-MNIST as [channels,size,size] float images in [-1,1] (x / 255 * 2 - 1) with their class
/// labels (0-9); ids "<split>_<index>" (index in the full split, 5 digits).
class FashionMnistDataset : public Dataset {
 public:
  explicit FashionMnistDataset(const FashionMnistParams& params);
  int64_t size() const override { return images_.size(0); }
  ImageItem get(int64_t index) const override;

 private:
  FashionMnistParams params_;
  at::Tensor images_;  // uint8 [N,28,28]
  at::Tensor labels_;  // uint8 [N]
};

}  // namespace copaint
