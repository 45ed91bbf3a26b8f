// Input hashes: the pixel bytes of images and masks, hashed with framework/core/sha256.h.
#include "framework/core/input_hash.h"

#include <ATen/ATen.h>

#include "framework/core/error.h"
#include "framework/core/sha256.h"

namespace copaint {

at::Tensor image_to_uint8(const at::Tensor& image) {
  if (!image.defined() || image.dim() != 3) {
    throw UsageError("image_to_uint8: expected a [C,H,W] tensor");
  }
  return image.detach()
      .to(at::kCPU, at::kFloat)
      .clamp(-1, 1)
      .add(1)
      .mul(127.5)
      .round()
      .to(at::kByte)
      .permute({1, 2, 0})
      .contiguous();
}

at::Tensor uint8_to_image(const at::Tensor& hwc) {
  return hwc.to(at::kFloat).div(127.5).sub(1.0).permute({2, 0, 1}).contiguous();
}

std::string uint8_sha256(const at::Tensor& bytes) {
  const at::Tensor b = bytes.to(at::kCPU).contiguous();
  if (b.scalar_type() != at::kByte) throw UsageError("uint8_sha256: expected a uint8 tensor");
  return sha256_hex(b.data_ptr<uint8_t>(), static_cast<size_t>(b.numel()));
}

std::string image_sha256(const at::Tensor& image) { return uint8_sha256(image_to_uint8(image)); }

std::string mask_sha256(const at::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 3 || mask.size(0) != 1) {
    throw UsageError("mask_sha256: expected a [1,H,W] tensor");
  }
  return uint8_sha256(mask.detach().to(at::kCPU, at::kFloat).gt(0.5).to(at::kByte)[0]);
}

std::string input_set_fingerprint(const std::vector<InputHash>& items) {
  Sha256 h;
  for (const auto& it : items) {
    h.update((it.image.empty() ? std::string("unreadable") : it.image) + " " + it.mask + "\n");
  }
  return h.hex();
}

}  // namespace copaint
