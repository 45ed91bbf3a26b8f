// DDPM-side helpers of the baselines: the network's eps and variance channels, guided-diffusion's
// p_mean_variance (posterior mean of q(x_{t-1} | x_t, x0_hat) with a learned-range or fixed
// variance) and the schedule a baseline walks. Random draws: methods/sampling.h (draw_randn).
//
// Precision follows the reference: per-step coefficients are computed in double from the schedule
// and cast to float32 (like framework/diffusion/diffusion.h's extract); what the reference computes
// on tensors is computed on tensors in its order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/diffusion/model.h"
#include "framework/diffusion/schedule.h"

namespace copaint {

/// How a DDPM reverse step chooses its variance.
enum class VarianceType {
  kAuto,          ///< the model's own (Denoiser::variance(): learned range for 2C-channel
                  ///< ADM networks, fixed small otherwise, a diffusers model's variance_type)
  kLearnedRange,  ///< log var = frac log(beta_t) + (1 - frac) log(posterior var), frac = (v+1)/2
  kFixedSmall,    ///< the posterior variance beta_t (1 - ab_{t-1}) / (1 - ab_t) (clipped at t=0)
  kFixedLarge,    ///< beta_t (posterior variance at t = 0)
};

/// auto | learned_range | fixed_small | fixed_large; UsageError naming `key` otherwise.
VarianceType parse_variance_type(const std::string& text, const std::string& key);

/// The network's output split into eps and (for learn-sigma networks) the variance channels.
struct ModelOutput {
  at::Tensor eps;         ///< [B,C,H,W]
  at::Tensor var_values;  ///< [B,C,H,W] in about [-1, 1], undefined for C-channel networks
  ModelVariance variance = ModelVariance::kFixedSmall;  ///< the model's own (what kAuto uses)
};

/// Evaluates the network at respaced steps t ([B] int64): it runs at schedule.timestep_map[t] and
/// its output is split into eps and, for learn-sigma networks, the variance channels. Counts one
/// forward.
ModelOutput predict_model(Denoiser& model, const DiffusionSchedule& schedule, const at::Tensor& x,
                          const at::Tensor& t, const at::Tensor& y, EvalCounter& counter);

/// eps for x at respaced steps t ([B] int64): the network runs at schedule.timestep_map[t] and
/// its first C output channels are returned (the rest are learned-variance channels).
/// Counts one forward in `counter`.
at::Tensor predict_eps(Denoiser& model, const DiffusionSchedule& schedule, const at::Tensor& x,
                       const at::Tensor& t, const at::Tensor& y, EvalCounter& counter);

/// guided-diffusion's per-step DDPM arrays of a (respaced) process, in double.
struct DdpmCoefficients {
  std::vector<double> alphas_cumprod_prev;             ///< ab_{t-1}, 1 at t = 0
  std::vector<double> posterior_variance;              ///< beta_t (1 - ab_{t-1}) / (1 - ab_t)
  std::vector<double> posterior_log_variance_clipped;  ///< log of it, entry 0 replaced by entry 1
  std::vector<double> posterior_mean_coef1;            ///< beta_t sqrt(ab_{t-1}) / (1 - ab_t)
  std::vector<double> posterior_mean_coef2;  ///< (1 - ab_{t-1}) sqrt(1 - beta_t) / (1 - ab_t)
  std::vector<double> log_betas;             ///< log beta_t
  std::vector<double> log_large_variance;    ///< log of (posterior_variance[1], betas[1:])

  static DdpmCoefficients from_schedule(const DiffusionSchedule& schedule);
};

/// What p_mean_variance returns.
struct PosteriorMeanVariance {
  at::Tensor mean;          ///< the model's mean of x_{t-1}
  at::Tensor log_variance;  ///< [B,1,1,1] (fixed) or [B,C,H,W] (learned)
  at::Tensor pred_x0;       ///< x0 prediction (clamped to [-1, 1] when clip)
};

/// p(x_{t-1} | x_t) of an eps network (guided-diffusion's p_mean_variance): x0 from eps,
/// optionally clamped, posterior mean coef1 * x0 + coef2 * x_t, and the chosen variance.
/// UsageError for kLearnedRange without variance channels.
PosteriorMeanVariance p_mean_variance(const DiffusionSchedule& schedule,
                                      const DdpmCoefficients& coefficients, const at::Tensor& x,
                                      const at::Tensor& t, const ModelOutput& output,
                                      VarianceType variance, bool clip_denoised);

/// The respaced process a baseline walks: the model's training process (Denoiser::train_schedule,
/// guided-diffusion's linear one for ADM models) respaced by `respacing`.
DiffusionSchedule method_schedule(const Denoiser& model, const std::string& respacing);

/// Resolves a `t_T` option: 0 means the respaced process's size; UsageError (naming `method`) when
/// negative or larger than it.
int64_t resolve_t_T(const std::string& method, int64_t t_T, int64_t respaced_size);

}  // namespace copaint
