// The mask interface: a deterministic generator of inpainting masks (1 = known pixel).
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace copaint {

class MaskGenerator {
 public:
  static constexpr const char* kRegistryKind = "mask";
  virtual ~MaskGenerator() = default;
  /// A [1,H,W] float mask, 1 = known pixel, fully determined by (size, image index, seed).
  virtual at::Tensor make(int64_t height, int64_t width, int64_t image_index,
                          uint64_t seed) const = 0;
  /// Where the masks come from when a registry option chooses between sources, for logs and
  /// result records (e.g. "reference bitmap /data/lorem3.npy" or "rendered"); empty otherwise.
  virtual std::string describe() const { return {}; }
};

/// Registers every built-in mask in Registry<MaskGenerator>::global(). Idempotent.
void register_builtin_masks();

}  // namespace copaint
