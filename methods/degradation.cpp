// Inpainting and average-pooling measurement operators with their pseudo-inverses.
#include "methods/degradation.h"

#include <ATen/ATen.h>

#include "framework/core/error.h"

namespace copaint {

Degradation Degradation::inpaint(at::Tensor mask) {
  if (!mask.defined() || mask.dim() != 4) throw InputError("inpainting mask must be [B,1,H,W]");
  Degradation d;
  d.mask_ = std::move(mask);
  return d;
}

Degradation Degradation::super_resolution(int64_t scale, int64_t size) {
  if (scale < 1)
    throw UsageError("super-resolution scale must be >= 1, got " + std::to_string(scale));
  if (size % scale != 0) {
    throw UsageError("super-resolution scale " + std::to_string(scale) +
                     " does not divide the image size " + std::to_string(size));
  }
  Degradation d;
  d.scale_ = scale;
  d.size_ = size;
  return d;
}

Degradation Degradation::from_mode(const std::string& method, Measurement mode, int64_t scale,
                                   const at::Tensor& mask, int64_t size) {
  check_measurement(method, mode, scale);
  if (mode == Measurement::kInpaint) return inpaint(mask);
  if (size % scale != 0) {
    throw UsageError(method + ".scale " + std::to_string(scale) +
                     " does not divide the image size " + std::to_string(size));
  }
  return super_resolution(scale, size);
}

void check_measurement(const std::string& method, Measurement mode, int64_t scale) {
  if (mode == Measurement::kSuperResolution && scale < 1) {
    throw UsageError(method + ".scale must be >= 1 in super_resolution mode");
  }
}

at::Tensor Degradation::A(const at::Tensor& x) const {
  if (scale_ == 0) return x * mask_;
  const int64_t small = x.size(-1) / scale_;
  return at::adaptive_avg_pool2d(x, {small, small});
}

at::Tensor Degradation::Ap(const at::Tensor& y) const {
  if (scale_ == 0) return y * mask_;
  const int64_t n = y.size(0), c = y.size(1), h = y.size(2), w = y.size(3);
  return y.reshape({n, c, h, 1, w, 1})
      .expand({n, c, h, scale_, w, scale_})
      .reshape({n, c, h * scale_, w * scale_});
}

}  // namespace copaint
