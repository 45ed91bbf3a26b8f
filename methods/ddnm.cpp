// DDNM: range/null-space decomposition sampler for inpainting and super-resolution.
#include "methods/ddnm.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "framework/core/error.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "framework/diffusion/schedule.h"
#include "methods/degradation.h"
#include "methods/sampling.h"

namespace copaint {

const std::vector<ParamField<DDNMParams>>& ddnm_fields() {
  constexpr double kMaxVisits = 100;  // a sane bound; beyond it only with --allow-large
  using P = DDNMParams;
  static const std::vector<ParamField<P>> fields =
      std::vector<ParamField<P>>{
          respacing_field<P>(),
          field("t_T", &P::t_T, "steps of the schedule (0 = the respaced size)").at_least(0),
          field("n_sample", &P::n_sample, "up/down resampling moves per step (RePaint rule)")
              .at_least(1)
              .confirm_above(kMaxVisits),
          field("jump_length", &P::jump_length, "time travel: steps back per jump (1 = none)")
              .at_least(1),
          field("jump_n_sample", &P::jump_n_sample, "time travel: visits of each jump point")
              .at_least(1)
              .confirm_above(kMaxVisits),
          field("eta", &P::eta, "share of fresh noise in the update").at_least(0).at_most(1),
          field("sigma_y", &P::sigma_y,
                "measurement noise level (0 = exact range-space correction)")
              .at_least(0),
          clip_denoised_field<P>(),
          field("paper_update", &P::paper_update,
                "the DDNM paper's noise-free update (no gamma_t factor; default: the reference's)"),
      } +
      measurement_fields<P>();
  return fields;
}

DDNMParams DDNMParams::from_options(const Options& o) {
  DDNMParams p = parse_params(ddnm_fields(), o);
  if (p.paper_update && p.sigma_y != 0) {
    throw UsageError("ddnm.paper_update is the noise-free update: it needs ddnm.sigma_y = 0");
  }
  check_measurement("ddnm", p.mode, p.scale);
  return p;
}

std::vector<OptionSpec> ddnm_option_specs(const DDNMParams& d) {
  return option_specs(ddnm_fields(), d);
}

at::Tensor ddnm_correct(const Degradation& degradation, const at::Tensor& x0, const at::Tensor& y,
                        const at::Tensor& lambda) {
  return x0 - lambda * degradation.Ap(degradation.A(x0) - y);
}

std::vector<int64_t> DDNM::times(int64_t respaced_size) const {
  const int64_t t_T = resolve_t_T("ddnm", params_.t_T, respaced_size);
  std::vector<int64_t> list =
      repaint_schedule_jump(t_T, params_.n_sample, params_.jump_length, params_.jump_n_sample);
  list.pop_back();  // the reference walks times[:-1]: no step at t = 0
  return list;
}

int64_t DDNM::expected_forwards(int64_t train_steps) const {
  const auto list =
      times(DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size());
  int64_t total = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) total += list[k + 1] < list[k];
  return total;
}

InpaintOutput DDNM::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const Degradation degradation =
      Degradation::from_mode("ddnm", params_.mode, params_.scale, mask, input.image.size(-1));
  const std::vector<int64_t> list = times(schedule.size());
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors
  const at::Tensor y = degradation.A(input.image);
  const double eta = params_.eta, sigma_y = params_.sigma_y;

  InpaintOutput out;
  auto step = [&](int64_t k, int64_t call, int64_t t_last, int64_t /*t_cur*/,
                  const at::Tensor& x) -> at::Tensor {
    const at::Tensor t = batch_steps(t_last, x), t_prev = batch_steps(t_last - 1, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
    const at::Tensor a = extract(schedule.alphas_cumprod, t, x);
    const at::Tensor a_prev = extract(schedule.alphas_cumprod, t_prev, x);
    const at::Tensor sigma_t = at::sqrt(at::rsub(at::pow(a, 2), 1.0));
    at::Tensor x0 = (x - eps * at::sqrt(at::rsub(a, 1.0))) / at::sqrt(a);
    if (params_.clip_denoised) x0 = x0.clamp(-1, 1);
    // All samples share t: the reference decides the branch on sample 0's float32 values, which
    // the host computes from the schedule with the same float32 operations (no device read).
    const auto a0 = static_cast<float>(schedule.alphas_cumprod[static_cast<size_t>(t_last)]);
    const auto a0_prev =
        static_cast<float>(schedule.alphas_cumprod[static_cast<size_t>(t_last - 1)]);
    const float s0 = std::sqrt(1.0f - a0 * a0);
    const float limit = a0_prev * static_cast<float>(sigma_y);
    at::Tensor lambda, gamma;
    if (params_.paper_update) {
      lambda = at::ones({}, x.options());
      gamma = at::ones({}, x.options());
    } else if (s0 >= limit) {
      lambda = at::ones({}, x.options());
      gamma = at::sqrt(at::pow(sigma_t, 2) - at::pow(a_prev * sigma_y, 2));
    } else {
      lambda = sigma_t / (a_prev * sigma_y);
      gamma = at::zeros({}, x.options());
    }
    x0 = ddnm_correct(degradation, x0, y, lambda);
    const at::Tensor root = at::sqrt(at::rsub(a_prev, 1.0));
    const at::Tensor c1 = root * eta;
    const at::Tensor c2 = root * std::pow(1.0 - eta * eta, 0.5);
    const at::Tensor noise = draw_noise(input, "step", k, t_last, x);
    const at::Tensor x_out = at::sqrt(a_prev) * x0 + gamma * (c1 * noise + c2 * eps);
    if (input.hooks)
      hooked_record(input, step_record(call, k, t_last, t_last - 1, x, eps, x0, x_out));
    return x_out;
  };
  out.sample = walk_jump_schedule(input, schedule, list, initial_noise(input), step);
  return out;
}

void register_ddnm_method(Registry<Method>& registry) {
  registry.add(
      {"ddnm",
       "DDNM: null-space correction of x0 (A = mask or average pooling), eta=0.85, "
       "sigma_y=0",
       ddnm_option_specs(DDNMParams{}),
       [](const Options& o) { return std::make_unique<DDNM>(DDNMParams::from_options(o)); },
       [](const std::string& name, const Options& o) { check_jump_length(name, o, "t_T"); }});
}

}  // namespace copaint
