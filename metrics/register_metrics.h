// Registration of the built-in metrics in Registry<Metric> and Registry<SetMetric>.
#pragma once

namespace copaint {

/// Registers psnr, ssim, psnr_masked, known_mse, lpips and lpips_masked (idempotent).
void register_builtin_metrics();

/// Registers fid and kid (idempotent).
void register_builtin_set_metrics();

}  // namespace copaint
