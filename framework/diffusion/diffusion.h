// Per-step diffusion helpers on tensors shared by the samplers: broadcasting per-sample values,
// x0 <-> eps, the DDIM update, forward noising (q_sample) and the one-step "undo" of time travel.
//
// Precision follows the reference (guided-diffusion's _extract_into_tensor): every per-step
// coefficient is computed in double from the schedule (e.g. sqrt(1 / alpha_bar)), then cast to
// float32 (to double only when x is double) and shaped [B,1,...,1]; what the reference then
// computes on tensors (the DDIM sigma, sqrt(1 - alpha_prev - sigma^2), sqrt(1 - beta)) is computed
// here on float32 tensors too, in the reference's operation order, so float32 results match it
// bit for bit on the same ATen. All helpers are differentiable in their tensor inputs.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/diffusion/schedule.h"

namespace copaint {

/// Broadcast helper: a per-sample value v (0-d, one element, or [B]) reshaped to [B,1,...,1] with
/// x.dim() dimensions, on x's device (dtype unchanged). InputError if v has another size than 1
/// or x.size(0).
at::Tensor per_sample(const at::Tensor& v, const at::Tensor& x);

/// An int64 [B] tensor on x's device filled with t, B = x.size(0) (the reference's
/// torch.tensor([t] * B)).
at::Tensor batch_steps(int64_t t, const at::Tensor& x);

/// values[t_b] for every sample (t: 0-d or [B] integer tensor, any device), cast from double to
/// float32 (double when x is double) and shaped by per_sample. UsageError for t outside
/// [0, values.size()).
at::Tensor extract(const std::vector<double>& values, const at::Tensor& t, const at::Tensor& x);

/// alpha_bar(t_b) per sample like extract, with alpha_bar(-1) = 1.
at::Tensor alpha_bar_at(const DiffusionSchedule& schedule, const at::Tensor& t,
                        const at::Tensor& x);

/// Predicted x0 from eps (the reference's _predict_xstart_from_eps):
/// sqrt(1/ab_t) * x_t - sqrt(1/ab_t - 1) * eps, both coefficients computed in double and cast;
/// equal in exact arithmetic to (x_t - sqrt(1-ab_t) eps) / sqrt(ab_t). No clamping: the samplers
/// clamp x0 to [-1, 1] themselves (clip_denoised).
at::Tensor x0_from_eps(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& eps);

/// eps from a predicted x0 (the reference's _predict_eps_from_xstart):
/// (sqrt(1/ab_t) * x_t - x0) / sqrt(1/ab_t - 1).
at::Tensor eps_from_x0(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& x0);

/// The DDIM sigma per sample, on float32 tensors from the cast alpha bars a = ab_t, p = ab_prev:
/// (eta * sqrt((1 - p) / (1 - a))) * sqrt(1 - a / p). Zero for eta = 0 (for prev_t < t).
at::Tensor ddim_sigma(const DiffusionSchedule& schedule, const at::Tensor& t,
                      const at::Tensor& prev_t, double eta, const at::Tensor& x);

/// One DDIM step from x_t (given its x0 and eps predictions) to x_prev_t, prev_t in [-1, t]
/// (alpha_bar(-1) = 1 makes prev_t = -1 return x0), as the reference's DDIM p_sample:
/// x_prev = (x0 * sqrt(p) + sqrt(1 - p - sigma^2) * eps) + (noise * sigma) * [t != 0],
/// sigma = ddim_sigma(eta). With an undefined `noise` the noise term is left out (what eta = 0
/// gives anyway; the reference still draws the noise, which callers mirroring its random stream
/// must do themselves).
at::Tensor ddim_step(const DiffusionSchedule& schedule, const at::Tensor& x0, const at::Tensor& eps,
                     const at::Tensor& t, const at::Tensor& prev_t, double eta = 0.0,
                     const at::Tensor& noise = at::Tensor());

/// Forward noising from x0 (the reference's q_sample): sqrt(ab_t) * x0 + sqrt(1 - ab_t) * noise,
/// coefficients computed in double and cast.
at::Tensor q_sample(const DiffusionSchedule& schedule, const at::Tensor& x0, const at::Tensor& t,
                    const at::Tensor& noise);

/// One forward step of time travel (the reference's _undo), from x at t_next - 1 to t_next:
/// sqrt(1 - beta) * x + sqrt(beta) * noise with beta = betas[t_next] cast to float32 and the
/// square roots taken on float32 tensors. In CoPaint-TT / RePaint lists, t_next is the second
/// entry of an upward pair (t, t + 1).
at::Tensor undo_step(const DiffusionSchedule& schedule, const at::Tensor& x,
                     const at::Tensor& t_next, const at::Tensor& noise);

}  // namespace copaint
