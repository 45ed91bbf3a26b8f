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

Degradation Degradation::from_mode(const std::string& method, const std::string& mode,
                                   int64_t scale, const at::Tensor& mask, int64_t size) {
  check_measurement(method, mode, scale);
  if (mode == "inpaint") return inpaint(mask);
  if (size % scale != 0) {
    throw UsageError(method + ".scale " + std::to_string(scale) +
                     " does not divide the image size " + std::to_string(size));
  }
  return super_resolution(scale, size);
}

std::vector<OptionSpec> measurement_option_specs(const std::string& mode, int64_t scale) {
  return {OptionSpec{"mode", mode,
                     "inpaint | super_resolution (the measurement: average pooling by scale)"}
              .one_of({"inpaint", "super_resolution"}),
          OptionSpec{"scale", std::to_string(scale),
                     "super-resolution factor (>= 1 in super_resolution mode)"}
              .integer()
              .at_least(0)};
}

void check_measurement(const std::string& method, const std::string& mode, int64_t scale) {
  if (mode != "inpaint" && mode != "super_resolution") {
    throw UsageError(method + ".mode must be inpaint or super_resolution, got '" + mode + "'");
  }
  if (mode == "super_resolution" && scale < 1) {
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
