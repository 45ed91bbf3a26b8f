// diffusers' deterministic DDIM loop (written from DDIMScheduler.set_timesteps / step's math).
#include "framework/diffusion/diffusers_ddim.h"

#include <cmath>

#include <ATen/ATen.h>

#include "framework/core/error.h"

namespace copaint {

at::Tensor diffusers_ddim_step(const DiffusionSchedule& train, const DiffusersDdimSettings& s,
                               int64_t t, int64_t prev_t, const at::Tensor& x,
                               const at::Tensor& eps) {
  const double a = train.alpha_bar(t);
  const double p =
      prev_t >= 0 ? train.alpha_bar(prev_t) : (s.set_alpha_to_one ? 1.0 : train.alpha_bar(0));
  at::Tensor x0 = (x - std::sqrt(1 - a) * eps) / std::sqrt(a);
  if (s.clip_sample) x0 = x0.clamp(-s.clip_sample_range, s.clip_sample_range);
  return std::sqrt(p) * x0 + std::sqrt(1 - p) * eps;
}

std::vector<at::Tensor> diffusers_ddim_sample(Denoiser& model, const DiffusionSchedule& train,
                                              const DiffusersDdimSettings& s,
                                              int64_t num_inference_steps, const at::Tensor& x_T) {
  const int64_t T = train.size();
  const std::vector<int64_t> steps =
      diffusers_timesteps(s.timestep_spacing, T, num_inference_steps, s.steps_offset);
  const int64_t stride = T / num_inference_steps;
  const int64_t c = x_T.size(1);
  std::vector<at::Tensor> xs;
  at::Tensor x = x_T;
  for (int64_t t : steps) {
    const at::Tensor tt = at::full({x.size(0)}, t, x.options().dtype(at::kLong));
    const at::Tensor eps = model.forward(x, tt, at::Tensor()).narrow(1, 0, c);
    x = diffusers_ddim_step(train, s, t, t - stride, x, eps);
    xs.push_back(x);
  }
  return xs;
}

}  // namespace copaint
