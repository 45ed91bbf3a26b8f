// The built-in Metric implementations: thin wrappers over image_metrics.h and Lpips.
#include "metrics/metric.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "framework/core/error.h"
#include "metrics/image_metrics.h"

namespace copaint {

at::Tensor PsnrMetric::score(const at::Tensor& samples, const at::Tensor& references,
                             const at::Tensor&) {
  at::NoGradGuard no_grad;
  return psnr(samples, references);
}

at::Tensor SsimMetric::score(const at::Tensor& samples, const at::Tensor& references,
                             const at::Tensor&) {
  at::NoGradGuard no_grad;
  return ssim(samples, references);
}

at::Tensor PsnrMaskedMetric::score(const at::Tensor& samples, const at::Tensor& references,
                                   const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  return psnr_masked(samples, references, mask);
}

at::Tensor KnownMseMetric::score(const at::Tensor& samples, const at::Tensor& references,
                                 const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  return known_mse(samples, references, mask);
}

std::string LpipsMetric::name() const {
  const std::string base = lpips_.name();  // lpips_<backbone>_v0.1
  return masked_ ? "lpips_masked" + base.substr(std::string("lpips").size()) : base;
}

at::Tensor LpipsMetric::score(const at::Tensor& samples, const at::Tensor& references,
                              const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  if (masked_ && !mask.defined()) throw InputError(name() + ": a mask is required");
  const ImageBatch in =
      check_image_batch(name(), samples, references, masked_ ? mask : at::Tensor());
  if (lpips_.device() != in.samples.device()) lpips_.to(in.samples.device());
  // A single reference goes through the trunk once and is broadcast against the batch.
  const at::Tensor ref = references.size(0) == 1 ? in.references.narrow(0, 0, 1) : in.references;
  if (!masked_) return lpips_(in.samples, ref).to(in.samples.scalar_type());
  const at::Tensor pasted = in.mask * in.references + (1.0 - in.mask) * in.samples;
  return lpips_(pasted, ref).to(in.samples.scalar_type());
}

}  // namespace copaint
