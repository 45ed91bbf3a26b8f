// The linear measurement operators of the baselines: inpainting (keep the known pixels) and
// super-resolution (average-pool by an integer factor), with the pseudo-inverse and the projection
// onto the measured subspace that DDNM, DDRM and DPS are written in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/core/params.h"
#include "framework/core/registry.h"

namespace copaint {

/// What a method measures of the image: the known pixels, or their average pooling by `scale`.
enum class Measurement { kInpaint, kSuperResolution };

/// y = A x for an inpainting mask or an average-pooling downsampler. Both have orthogonal rows of
/// equal norm, so A A^T = s^2 I with one singular value s, and Ap = A^T / s^2 is the
/// pseudo-inverse: A Ap = I, and project = Ap A is the orthogonal projection onto A's row space.
class Degradation {
 public:
  /// Inpainting with a binary mask [B or 1, 1 or C, H, W] (1 = known): A x = mask * x (kept at
  /// full size, zero where unknown), Ap = A, s = 1.
  static Degradation inpaint(at::Tensor mask);
  /// Super-resolution by `scale` for square images of side `size` (a multiple of scale):
  /// A = average pooling over scale x scale patches, Ap = nearest (patch-replicating) upsampling,
  /// s = 1 / scale. UsageError if scale < 1 or size % scale != 0.
  static Degradation super_resolution(int64_t scale, int64_t size);
  /// From a method's `mode` and `scale` options; UsageError naming `method` on a bad scale.
  static Degradation from_mode(const std::string& method, Measurement mode, int64_t scale,
                               const at::Tensor& mask, int64_t size);

  bool is_inpaint() const { return scale_ == 0; }
  /// The measurement A x.
  at::Tensor A(const at::Tensor& x) const;
  /// The pseudo-inverse applied to a measurement, back at image size.
  at::Tensor Ap(const at::Tensor& y) const;
  /// Ap(A(x)): the measured part of x.
  at::Tensor project(const at::Tensor& x) const { return Ap(A(x)); }
  /// The singular value s of A (1 for inpainting, 1 / scale for super-resolution).
  double singular() const { return scale_ == 0 ? 1.0 : 1.0 / static_cast<double>(scale_); }

 private:
  at::Tensor mask_;
  int64_t scale_ = 0;  // 0 = inpainting
  int64_t size_ = 0;
};

/// The `mode` and `scale` options of every method that takes a measurement (CoPaint, DDNM, DDRM,
/// DPS), declared once: P has members `Measurement mode` and `int64_t scale`.
template <class P>
std::vector<ParamField<P>> measurement_fields() {
  return {field("mode", &P::mode,
                "inpaint | super_resolution (the measurement: average pooling by scale)",
                EnumNames<Measurement>{{"inpaint", Measurement::kInpaint},
                                       {"super_resolution", Measurement::kSuperResolution}}),
          field("scale", &P::scale, "super-resolution factor (>= 1 in super_resolution mode)")
              .at_least(0)};
}

/// UsageError naming `method` unless scale >= 1 in super_resolution mode.
void check_measurement(const std::string& method, Measurement mode, int64_t scale);

}  // namespace copaint
