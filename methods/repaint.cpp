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

const std::vector<ParamField<RePaintParams>>& repaint_fields() {
  constexpr double kMaxVisits = 100;  // a sane bound; beyond it only with --allow-large
  using P = RePaintParams;
  static const std::vector<ParamField<P>> fields = {
      respacing_field<P>(),
      field("t_T", &P::t_T, "steps of the jump schedule (0 = the respaced size)").at_least(0),
      field("n_sample", &P::n_sample, "up/down resampling moves per step")
          .at_least(1)
          .confirm_above(kMaxVisits),
      field("jump_length", &P::jump_length, "steps travelled back per jump").at_least(1),
      field("jump_n_sample", &P::jump_n_sample, "visits of each jump point")
          .at_least(1)
          .confirm_above(kMaxVisits),
      field("variance", &P::variance,
            "reverse-step variance: auto | learned_range | fixed_small | fixed_large",
            EnumNames<VarianceType>{{"auto", VarianceType::kAuto},
                                    {"learned_range", VarianceType::kLearnedRange},
                                    {"fixed_small", VarianceType::kFixedSmall},
                                    {"fixed_large", VarianceType::kFixedLarge}}),
      clip_denoised_field<P>(),
  };
  return fields;
}

RePaintParams RePaintParams::from_options(const Options& o) {
  return parse_params(repaint_fields(), o);
}

std::vector<OptionSpec> repaint_option_specs(const RePaintParams& d) {
  return option_specs(repaint_fields(), d);
}

std::vector<int64_t> RePaint::times(int64_t respaced_size) const {
  const int64_t t_T = resolve_t_T("repaint", params_.t_T, respaced_size);
  return repaint_schedule_jump(t_T, params_.n_sample, params_.jump_length, params_.jump_n_sample);
}

int64_t RePaint::expected_forwards(int64_t train_steps) const {
  const auto list =
      times(DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size());
  int64_t total = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) total += list[k + 1] < list[k];
  return total;
}

InpaintOutput RePaint::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const DdpmCoefficients coefficients = DdpmCoefficients::from_schedule(schedule);
  const std::vector<int64_t> list = times(schedule.size());
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors

  InpaintOutput out;
  bool first = true;
  auto step = [&](int64_t k, int64_t call, int64_t t_last, int64_t t_cur,
                  const at::Tensor& x_in) -> at::Tensor {
    at::Tensor x = x_in;
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
    const PosteriorMeanVariance pmv = p_mean_variance(schedule, coefficients, x, t, output,
                                                      params_.variance, params_.clip_denoised);
    const double nonzero = t_last != 0 ? 1.0 : 0.0;
    x = pmv.mean + at::exp(pmv.log_variance * 0.5) * nonzero * noise;
    first = false;
    if (input.hooks)
      hooked_record(input, step_record(call, k, t_last, t_cur, x_in, output.eps, pmv.pred_x0, x));
    return x;
  };
  out.sample = walk_jump_schedule(input, schedule, list, initial_noise(input), step);
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
