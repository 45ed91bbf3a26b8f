// The metric interface the harness scores batches with, and the built-in metrics behind it
// (psnr, ssim, psnr_masked, known_mse, lpips, lpips_masked).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "metrics/lpips.h"

namespace copaint {

/// A per-sample score of sampled images against references, both [B,C,H,W] in [-1,1]
/// (references may be [1,C,H,W]); mask [B or 1,1,H,W], 1 = known (undefined when not needed).
class Metric {
 public:
  static constexpr const char* kRegistryKind = "metric";
  virtual ~Metric() = default;
  /// Name in result rows, e.g. "psnr", "lpips_alex_v0.1".
  virtual std::string name() const = 0;
  virtual bool higher_is_better() const = 0;
  /// Whether score() needs the mask.
  virtual bool needs_mask() const { return false; }
  /// [B] float scores on the samples' device.
  virtual at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                           const at::Tensor& mask) = 0;
};

class PsnrMetric : public Metric {
 public:
  std::string name() const override { return "psnr"; }
  bool higher_is_better() const override { return true; }
  at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                   const at::Tensor& mask) override;
};

class SsimMetric : public Metric {
 public:
  std::string name() const override { return "ssim"; }
  bool higher_is_better() const override { return true; }
  at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                   const at::Tensor& mask) override;
};

class PsnrMaskedMetric : public Metric {
 public:
  std::string name() const override { return "psnr_masked"; }
  bool higher_is_better() const override { return true; }
  bool needs_mask() const override { return true; }
  at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                   const at::Tensor& mask) override;
};

class KnownMseMetric : public Metric {
 public:
  std::string name() const override { return "known_mse"; }
  bool higher_is_better() const override { return false; }
  bool needs_mask() const override { return true; }
  at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                   const at::Tensor& mask) override;
};

/// LPIPS of the samples as they are ("lpips_<backbone>_v0.1"), or, when `masked`, of the samples
/// with the known region pasted from the reference (mask * reference + (1 - mask) * sample,
/// "lpips_masked_<backbone>_v0.1"): it scores only the inpainted content and its seam with the
/// context, so methods that only softly enforce the known region (CoPaint) are not charged for
/// known-pixel drift, which known_mse reports separately. Weights follow the samples' device.
class LpipsMetric : public Metric {
 public:
  explicit LpipsMetric(Lpips lpips, bool masked = false)
      : lpips_(std::move(lpips)), masked_(masked) {}
  std::string name() const override;
  bool higher_is_better() const override { return false; }
  bool needs_mask() const override { return masked_; }
  at::Tensor score(const at::Tensor& samples, const at::Tensor& references,
                   const at::Tensor& mask) override;

 private:
  Lpips lpips_;
  bool masked_;
};

}  // namespace copaint
