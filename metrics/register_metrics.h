// Registration of the built-in metrics in Registry<Metric> and Registry<SetMetric>.
#pragma once

namespace copaint {

/// Registers psnr, ssim, psnr_masked, known_mse, lpips and lpips_masked (idempotent).
void register_builtin_metrics();

/// Registers the metrics over a set (fid, kid) in Registry<SetMetric> (idempotent).
void register_builtin_set_metrics();

}  // namespace copaint
