// Registration of the built-in metrics in Registry<Metric>.
#pragma once

namespace copaint {

/// Registers psnr, ssim, psnr_masked, known_mse, lpips and lpips_masked (idempotent).
void register_builtin_metrics();

}  // namespace copaint
