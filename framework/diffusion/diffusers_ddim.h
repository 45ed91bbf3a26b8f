// diffusers' DDIMScheduler sampling loop (eta = 0) over a model's training process: the
// timesteps of its timestep_spacing, prev_t = t - T // N, the final alpha and clip_sample, so a
// run reproduces diffusers' trajectory for a diffusers model (tests/fixtures/diffusers/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/diffusion/model.h"
#include "framework/diffusion/schedule.h"

namespace copaint {

/// The DDIMScheduler settings that shape a deterministic run (scheduler_config.json keys).
struct DiffusersDdimSettings {
  std::string timestep_spacing = "leading";  ///< leading | trailing | linspace
  int64_t steps_offset = 0;
  bool set_alpha_to_one = true;  ///< final alpha_bar 1, else alphas_cumprod[0]
  bool clip_sample = false;      ///< clamp x0 to +-clip_sample_range
  double clip_sample_range = 1.0;
};

/// One deterministic DDIMScheduler.step: a = ab[t], p = ab[prev_t] (prev_t < 0: the final
/// alpha), x0 = (x - sqrt(1 - a) eps) / sqrt(a) (clamped with clip_sample),
/// x_prev = sqrt(p) x0 + sqrt(1 - p) eps. Coefficients in double, cast to x's dtype.
at::Tensor diffusers_ddim_step(const DiffusionSchedule& train, const DiffusersDdimSettings& s,
                               int64_t t, int64_t prev_t, const at::Tensor& x,
                               const at::Tensor& eps);

/// Runs `num_inference_steps` DDIM steps from x_T over diffusers_timesteps(spacing), the model
/// evaluated at each original timestep (its forward output's first C channels as eps). Returns
/// x after every step ([N] tensors; the last is the sample). UsageError for bad counts.
std::vector<at::Tensor> diffusers_ddim_sample(Denoiser& model, const DiffusionSchedule& train,
                                              const DiffusersDdimSettings& s,
                                              int64_t num_inference_steps, const at::Tensor& x_T);

}  // namespace copaint
