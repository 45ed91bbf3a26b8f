// RePaint: DDPM posterior steps with known-region injection and the jump schedule.
#include "methods/repaint.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "framework/core/error.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "framework/diffusion/schedule.h"
#include "methods/sampling.h"

namespace copaint {

RePaintParams RePaintParams::from_options(const Options& o) {
  RePaintParams p;
  p.respacing = o.get("respacing");
  p.t_T = o.get_int("t_T");
  p.n_sample = o.get_int("n_sample");
  p.jump_length = o.get_int("jump_length");
  p.jump_n_sample = o.get_int("jump_n_sample");
  p.variance = o.get("variance");
  p.clip_denoised = o.get_bool("clip_denoised");
  parse_variance_type(p.variance, "repaint.variance");
  if (p.t_T < 0) throw UsageError("repaint.t_T must be >= 0");
  if (p.n_sample < 1 || p.jump_length < 1 || p.jump_n_sample < 1) {
    throw UsageError("repaint.n_sample, jump_length and jump_n_sample must be >= 1");
  }
  return p;
}

std::vector<OptionSpec> repaint_option_specs(const RePaintParams& d) {
  constexpr double kMaxVisits = 100;  // a sane bound; beyond it only with --allow-large
  return {
      {"respacing", d.respacing,
       "respacing of the model's 1000-step process (guided-diffusion rule)"},
      OptionSpec{"t_T", std::to_string(d.t_T), "steps of the jump schedule (0 = the respaced size)"}
          .integer()
          .at_least(0),
      OptionSpec{"n_sample", std::to_string(d.n_sample), "up/down resampling moves per step"}
          .integer()
          .at_least(1)
          .confirm_above(kMaxVisits),
      OptionSpec{"jump_length", std::to_string(d.jump_length), "steps travelled back per jump"}
          .integer()
          .at_least(1),
      OptionSpec{"jump_n_sample", std::to_string(d.jump_n_sample), "visits of each jump point"}
          .integer()
          .at_least(1)
          .confirm_above(kMaxVisits),
      OptionSpec{"variance", d.variance,
                 "reverse-step variance: auto | learned_range | fixed_small | fixed_large"}
          .one_of({"auto", "learned_range", "fixed_small", "fixed_large"}),
      {"clip_denoised", d.clip_denoised ? "true" : "false", "clamp x0 predictions to [-1, 1]"},
  };
}

std::vector<int64_t> RePaint::times(int64_t respaced_size) const {
  const int64_t t_T = resolve_t_T("repaint", params_.t_T, respaced_size);
  return repaint_schedule_jump(t_T, params_.n_sample, params_.jump_length, params_.jump_n_sample);
}

int64_t RePaint::expected_forwards() const {
  const auto list = times(DiffusionSchedule::linear(1000).respaced(params_.respacing).size());
  int64_t total = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) total += list[k + 1] < list[k];
  return total;
}

InpaintOutput RePaint::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const DdpmCoefficients coefficients = DdpmCoefficients::from_schedule(schedule);
  const VarianceType variance = parse_variance_type(params_.variance, "repaint.variance");
  const std::vector<int64_t> list = times(schedule.size());
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors

  InpaintOutput out;
  at::Tensor x = initial_noise(input);
  bool first = true;
  int64_t call = 0;
  const int64_t total = static_cast<int64_t>(list.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t t_last = list[k], t_cur = list[k + 1];
    if (t_cur < t_last) {
      x = hooked_x_in(input, call, x);
      const at::Tensor x_in = x;
      const at::Tensor t = batch_steps(t_last, x);
      const at::Tensor noise = draw_noise(input, "step", k, t_last, x);
      if (!first) {
        const at::Tensor ab = extract(schedule.alphas_cumprod, t, x);
        const at::Tensor known =
            at::sqrt(ab) * input.image +
            at::sqrt(at::rsub(ab, 1.0)) * draw_noise(input, "inject", k, t_last, x);
        x = mask * known + at::rsub(mask, 1.0) * x;
      }
      const ModelOutput output = predict_model(model, schedule, x, t, input.y, out.evals);
      const PosteriorMeanVariance pmv =
          p_mean_variance(schedule, coefficients, x, t, output, variance, params_.clip_denoised);
      const double nonzero = t_last != 0 ? 1.0 : 0.0;
      x = pmv.mean + at::exp(pmv.log_variance * 0.5) * nonzero * noise;
      first = false;
      if (input.hooks)
        hooked_record(input, step_record(call, k, t_last, t_cur, x_in, output.eps, pmv.pred_x0, x));
      ++call;
    } else {
      const at::Tensor t_next = batch_steps(t_cur, x);
      x = undo_step(schedule, x, t_next, draw_noise(input, "undo", k, t_cur, x));
    }
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
  return out;
}

void register_repaint_method(Registry<Method>& registry) {
  registry.add(
      {"repaint",
       "RePaint: DDPM steps with known-region injection and jump resampling (t_T=250, "
       "jump_length=10, jump_n_sample=10)",
       repaint_option_specs(RePaintParams{}),
       [](const Options& o) { return std::make_unique<RePaint>(RePaintParams::from_options(o)); },
       [](const std::string& name, const Options& o) { check_jump_length(name, o, "t_T"); }});
}

}  // namespace copaint
