// Helpers every sampler shares: per-sample Gaussian noise from per-sample generators (or from a
// recording), the step hooks, and input checks. The per-step math (the model at respaced steps,
// x0/eps, DDIM and DDPM steps) is in framework/diffusion/ (diffusion.h, ddpm.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/diffusion/model.h"
#include "framework/diffusion/schedule.h"
#include "methods/method.h"

namespace copaint {

/// Standard normal noise shaped like `like`, sample b drawn from generators[b] (so a sample's
/// noise does not depend on the rest of its batch). Created on CPU, moved to like's device.
at::Tensor per_sample_randn(const at::Tensor& like, const std::vector<at::Generator>& generators);

/// Standard normal noise for groups of rows: like.size(0) must be generators.size() * k, and rows
/// [b k, (b+1) k) are drawn from generators[b] in one call (a sample's particles; k = 1 is
/// per_sample_randn). Created on CPU, moved to like's device and dtype.
at::Tensor grouped_randn(const at::Tensor& like, const std::vector<at::Generator>& generators);

/// The one way a method draws Gaussian noise: `source`'s answer to `request` (kind randn) when it
/// has one (InputError unless shaped like request.like), else grouped_randn(request.like,
/// generators). The answer is moved to like's device and dtype.
at::Tensor draw_randn(const NoiseSource* source, const std::vector<at::Generator>& generators,
                      DrawRequest request);
at::Tensor draw_randn(const InpaintInput& input, DrawRequest request);

/// draw_randn for a draw of `role` at outer step `step` and respaced step t, shaped like `like`.
/// `legacy`: the draw was already offered to the earlier (purpose, t, like) callback form.
at::Tensor draw_noise(const InpaintInput& input, const std::string& role, int64_t step, int64_t t,
                      const at::Tensor& like, bool legacy = true);

/// The one way a method draws multinomial indices: `source`'s answer to `request` (kind
/// multinomial; k int64 indices into request.weights) when it has one, else
/// at::multinomial(weights, k, replacement, generator). Returned on the CPU.
at::Tensor draw_multinomial(const NoiseSource* source, DrawRequest request,
                            at::Generator& generator);

/// input.hooks->replace_x_in's answer for network call `call` when it gives one (moved to x's
/// device and dtype), else x.
at::Tensor hooked_x_in(const InpaintInput& input, int64_t call, const at::Tensor& x);
/// Passes `record` to input.hooks->on_record when set.
void hooked_record(const InpaintInput& input, const StepRecord& record);
/// The record of one network call; the extras (weights, indices, grad, norm) are set after.
StepRecord step_record(int64_t call, int64_t step, int64_t t, int64_t prev_t, at::Tensor x_in,
                       at::Tensor eps, at::Tensor pred_x0, at::Tensor x_out);

/// Checks an InpaintInput against the model (shapes, ranges, generator count); throws InputError
/// naming what is wrong. Returns the mask expanded to [B,1,H,W] float on the image's device.
at::Tensor check_input(const Denoiser& model, const InpaintInput& input);

/// Initial noise: input.x_T when given, else the draw of role "x_T" (step -1, t -1, shaped like the
/// image; per_sample_randn without a replay source).
at::Tensor initial_noise(const InpaintInput& input);

/// A registry rule of the methods with jumps (repaint, ddnm, CoPaint-TT): jump_length must stay
/// below the schedule's length whenever a jump point is visited more than once (jump_n_sample >
/// 1). The length is the option `length_key` (t_T, steps), or the respaced schedule's size where
/// that is 0. UsageError naming the keys (check_below); a bad respacing is left to the factory.
void check_jump_length(const std::string& name, const Options& o, const std::string& length_key);

/// One downward pair (t_last, t_cur) of a jump schedule, pair index k, network call `call`
/// (counting the downward pairs): x after the step from x at t_last.
using JumpStep = std::function<at::Tensor(int64_t k, int64_t call, int64_t t_last, int64_t t_cur,
                                          const at::Tensor& x)>;

/// Walks the pairs (list[k], list[k+1]) of a jump schedule (RePaint, DDNM) from x: a downward
/// pair is `step` on hooked_x_in(input, call, x); an upward pair re-noises x one step with
/// betas[t_cur] (draw "undo" (k, t_cur)). Reports input.on_step after each pair; returns the
/// last x clamped to [-1, 1].
at::Tensor walk_jump_schedule(const InpaintInput& input, const DiffusionSchedule& schedule,
                              const std::vector<int64_t>& list, at::Tensor x, const JumpStep& step);

/// The options several methods share, declared once (P has the member of the same name).
template <class P>
ParamField<P> respacing_field() {
  return field("respacing", &P::respacing,
               "respacing of the model's 1000-step process (guided-diffusion rule)");
}
template <class P>
ParamField<P> clip_denoised_field() {
  return field("clip_denoised", &P::clip_denoised, "clamp x0 predictions to [-1, 1]");
}
/// The DDIM step spacing (copaint, blended).
template <class P>
ParamField<P> schedule_type_field() {
  return field(
      "schedule_type", &P::schedule_type, "DDIM step spacing: linear | quad",
      EnumNames<ScheduleType>{{"linear", ScheduleType::kLinear}, {"quad", ScheduleType::kQuad}});
}

}  // namespace copaint
