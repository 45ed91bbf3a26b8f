// Pixel metrics between sampled images and their references: PSNR, SSIM (as the CoPaint reference
// computes them) and the masked variants psnr_masked and known_mse. One score per sample.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace copaint {

// Conventions shared by every function here:
// - `samples` is [B,C,H,W] in [-1,1] (C = 1 or 3), `references` is [B,C,H,W] or [1,C,H,W]
//   (broadcast to every sample); values may exceed [-1,1] by at most 1e-3 (InputError otherwise).
// - `mask` is [B,1,H,W] or [1,1,H,W], 1 = known pixel, 0 = pixel to inpaint (bool or float).
// - The result is a float32 (float64 for float64 input) tensor [B] on the samples' device.
// - Computation runs on the samples' device; references and mask are moved there.

/// 10 log10(1 / MSE) on images mapped to [0,1], MSE over C,H,W. Identical images give +inf.
at::Tensor psnr(const at::Tensor& samples, const at::Tensor& references);

/// Mean SSIM on images mapped to [0,1]: 11x11 Gaussian window (sigma 1.5) applied per channel with
/// zero padding 5, C1 = 0.01^2, C2 = 0.03^2, map averaged over C,H,W (as the reference).
at::Tensor ssim(const at::Tensor& samples, const at::Tensor& references);

/// PSNR on the unknown region only (mask == 0), images mapped to [0,1]: the MSE averages over
/// channels and unknown pixels. InputError when a sample's mask has no unknown pixel.
at::Tensor psnr_masked(const at::Tensor& samples, const at::Tensor& references,
                       const at::Tensor& mask);

/// Mean squared error over the known pixels (mask == 1) and channels, in the [-1,1] space the
/// samplers work in (the data-consistency term of CoPaint's objective; divide by 4 for [0,1]).
/// InputError when a sample's mask has no known pixel.
at::Tensor known_mse(const at::Tensor& samples, const at::Tensor& references,
                     const at::Tensor& mask);

/// Checks `samples`/`references` (and `mask` when defined) as described above and returns them
/// as floating tensors on the samples' device, references and mask expanded to B. `what` names
/// the metric in error messages. Used by the LPIPS metrics too.
struct ImageBatch {
  at::Tensor samples;     ///< [B,C,H,W], float32 or float64
  at::Tensor references;  ///< [B,C,H,W] (an expanded view when given as [1,...])
  at::Tensor mask;        ///< [B,1,H,W] in samples' dtype, undefined when no mask was given
};
ImageBatch check_image_batch(const std::string& what, const at::Tensor& samples,
                             const at::Tensor& references, const at::Tensor& mask = at::Tensor());

}  // namespace copaint
