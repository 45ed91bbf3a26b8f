// PSNR, SSIM, psnr_masked and known_mse, and the input checks shared by every metric.
#include "metrics/image_metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

#include "framework/core/error.h"

namespace copaint {
namespace {

constexpr double kRangeSlack = 1e-3;  // values may exceed [-1,1] by this much (rounding)

std::string shape_of(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void check_range(const std::string& what, const char* name, const at::Tensor& t) {
  auto [lo, hi] = at::aminmax(t);
  const double mn = lo.item<double>(), mx = hi.item<double>();
  if (!(mn >= -1.0 - kRangeSlack && mx <= 1.0 + kRangeSlack)) {
    std::ostringstream os;
    os << what << ": " << name << " must hold images in [-1,1], found values in [" << mn << ", "
       << mx << "]";
    throw InputError(os.str());
  }
}

at::Tensor as_floating(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? t : t.to(at::kFloat);
}

/// (x + 1) / 2, as the reference maps images to [0,1].
at::Tensor to_unit(const at::Tensor& x) { return (x + 1.0) / 2.0; }

/// The normalised 1-D Gaussian (window 11, sigma 1.5) as the reference builds it: exp() in
/// double, then normalised in float32; the 2-D window is its outer product.
at::Tensor gaussian_window(int64_t channels, const at::TensorOptions& opts) {
  constexpr int64_t kSize = 11;
  constexpr double kSigma = 1.5;
  std::vector<float> g(kSize);
  for (int64_t i = 0; i < kSize; ++i) {
    const double d = static_cast<double>(i - kSize / 2);
    g[i] = static_cast<float>(std::exp(-(d * d) / (2.0 * kSigma * kSigma)));
  }
  at::Tensor g1 = at::tensor(g, at::kFloat);
  g1 = g1 / g1.sum();
  at::Tensor w = at::outer(g1, g1);  // [11,11]
  return w.expand({channels, 1, kSize, kSize}).contiguous().to(opts);
}

/// Per-sample mean over dims 1..3 of `values * weight`, divided by the per-sample count of
/// weighted elements; throws when a sample has no such element.
at::Tensor masked_mean(const std::string& what, const at::Tensor& values, const at::Tensor& weight,
                       const char* region) {
  const int64_t channels = values.size(1);
  at::Tensor count = weight.sum({1, 2, 3}) * static_cast<double>(channels);
  if (count.eq(0).any().item<bool>()) {
    throw InputError(what + ": a sample's mask has no " + region + " pixel");
  }
  return (values * weight).sum({1, 2, 3}) / count;
}

}  // namespace

ImageBatch check_image_batch(const std::string& what, const at::Tensor& samples,
                             const at::Tensor& references, const at::Tensor& mask) {
  if (!samples.defined() || !references.defined()) {
    throw InputError(what + ": samples and references must be given");
  }
  if (samples.dim() != 4 || (samples.size(1) != 1 && samples.size(1) != 3)) {
    throw InputError(what + ": samples must be [B,C,H,W] with C = 1 or 3, got " +
                     shape_of(samples));
  }
  if (samples.size(0) == 0) throw InputError(what + ": samples batch is empty");
  if (!samples.is_floating_point() || !references.is_floating_point()) {
    throw InputError(what + ": samples and references must be floating-point images in [-1,1]");
  }
  const int64_t b = samples.size(0);
  if (references.dim() != 4 || (references.size(0) != 1 && references.size(0) != b) ||
      references.sizes().slice(1) != samples.sizes().slice(1)) {
    throw InputError(what + ": references must be [" + std::to_string(b) + " or 1," +
                     std::to_string(samples.size(1)) + "," + std::to_string(samples.size(2)) + "," +
                     std::to_string(samples.size(3)) + "] to match samples " + shape_of(samples) +
                     ", got " + shape_of(references));
  }
  ImageBatch out;
  out.samples = as_floating(samples);
  out.references = references.to(out.samples.device(), out.samples.scalar_type());
  check_range(what, "samples", out.samples);
  check_range(what, "references", out.references);
  if (out.references.size(0) != b) out.references = out.references.expand_as(out.samples);
  if (mask.defined()) {
    if (mask.dim() != 4 || (mask.size(0) != 1 && mask.size(0) != b) || mask.size(1) != 1 ||
        mask.size(2) != samples.size(2) || mask.size(3) != samples.size(3)) {
      throw InputError(what + ": mask must be [" + std::to_string(b) + " or 1,1," +
                       std::to_string(samples.size(2)) + "," + std::to_string(samples.size(3)) +
                       "] (1 = known), got " + shape_of(mask));
    }
    at::Tensor m = mask.to(out.samples.device(), out.samples.scalar_type());
    if (m.ne(0).logical_and(m.ne(1)).any().item<bool>()) {
      throw InputError(what + ": mask values must be 0 (unknown) or 1 (known)");
    }
    out.mask = m.size(0) == b ? m : m.expand({b, 1, m.size(2), m.size(3)});
  }
  return out;
}

at::Tensor psnr(const at::Tensor& samples, const at::Tensor& references) {
  const ImageBatch in = check_image_batch("psnr", samples, references);
  at::Tensor mse = (to_unit(in.samples) - to_unit(in.references)).pow(2).mean({1, 2, 3});
  return 10.0 * at::log10(1.0 / mse);
}

at::Tensor ssim(const at::Tensor& samples, const at::Tensor& references) {
  const ImageBatch in = check_image_batch("ssim", samples, references);
  const int64_t channels = in.samples.size(1);
  const at::Tensor window = gaussian_window(channels, in.samples.options());
  auto blur = [&](const at::Tensor& x) {
    return at::conv2d(x, window, /*bias=*/{}, /*stride=*/1, /*padding=*/5, /*dilation=*/1,
                      /*groups=*/channels);
  };
  const at::Tensor x = to_unit(in.samples);
  const at::Tensor y = to_unit(in.references).contiguous();
  const at::Tensor mu_x = blur(x), mu_y = blur(y);
  const at::Tensor mu_xx = mu_x.pow(2), mu_yy = mu_y.pow(2), mu_xy = mu_x * mu_y;
  const at::Tensor var_x = blur(x * x) - mu_xx;
  const at::Tensor var_y = blur(y * y) - mu_yy;
  const at::Tensor cov_xy = blur(x * y) - mu_xy;
  constexpr double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  const at::Tensor map =
      ((2.0 * mu_xy + c1) * (2.0 * cov_xy + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2));
  return map.mean(1).mean(1).mean(1);
}

at::Tensor psnr_masked(const at::Tensor& samples, const at::Tensor& references,
                       const at::Tensor& mask) {
  if (!mask.defined()) throw InputError("psnr_masked: a mask is required");
  const ImageBatch in = check_image_batch("psnr_masked", samples, references, mask);
  const at::Tensor sq = (to_unit(in.samples) - to_unit(in.references)).pow(2);
  const at::Tensor mse = masked_mean("psnr_masked", sq, 1.0 - in.mask, "unknown");
  return 10.0 * at::log10(1.0 / mse);
}

at::Tensor known_mse(const at::Tensor& samples, const at::Tensor& references,
                     const at::Tensor& mask) {
  if (!mask.defined()) throw InputError("known_mse: a mask is required");
  const ImageBatch in = check_image_batch("known_mse", samples, references, mask);
  const at::Tensor sq = (in.samples - in.references).pow(2);
  return masked_mean("known_mse", sq, in.mask, "known");
}

}  // namespace copaint
