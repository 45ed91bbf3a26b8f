// The dataset interface: an indexed collection of images with stable ids.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace copaint {

/// One image of a dataset.
struct ImageItem {
  std::string id;      ///< stable identifier (file name, index)
  at::Tensor image;    ///< [C,H,W] float in [-1,1]
  int64_t label = -1;  ///< class label, -1 when unknown
};

class Dataset {
 public:
  static constexpr const char* kRegistryKind = "dataset";
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual ImageItem get(int64_t index) const = 0;
};

/// Registers the built-in datasets (folder, celebahq, imagenet100, fashion_mnist). Idempotent.
/// The image-file ones decode through read_image_file (datasets/image_file.h), which needs a
/// decoder installed by the I/O layer (experiments/) or by the caller.
void register_builtin_datasets();

}  // namespace copaint
