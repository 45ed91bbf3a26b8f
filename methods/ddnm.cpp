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

DDNMParams DDNMParams::from_options(const Options& o) {
  DDNMParams p;
  p.respacing = o.get("respacing");
  p.t_T = o.get_int("t_T");
  p.n_sample = o.get_int("n_sample");
  p.jump_length = o.get_int("jump_length");
  p.jump_n_sample = o.get_int("jump_n_sample");
  p.eta = o.get_double("eta");
  p.sigma_y = o.get_double("sigma_y");
  p.mode = o.get("mode");
  p.scale = o.get_int("scale");
  p.clip_denoised = o.get_bool("clip_denoised");
  p.paper_update = o.get_bool("paper_update");
  if (p.paper_update && p.sigma_y != 0) {
    throw UsageError("ddnm.paper_update is the noise-free update: it needs ddnm.sigma_y = 0");
  }
  if (p.t_T < 0) throw UsageError("ddnm.t_T must be >= 0");
  if (p.n_sample < 1 || p.jump_length < 1 || p.jump_n_sample < 1) {
    throw UsageError("ddnm.n_sample, jump_length and jump_n_sample must be >= 1");
  }
  if (p.eta < 0 || p.eta > 1) throw UsageError("ddnm.eta must be in [0, 1]");
  if (p.sigma_y < 0) throw UsageError("ddnm.sigma_y must be >= 0");
  check_measurement("ddnm", p.mode, p.scale);
  return p;
}

std::vector<OptionSpec> ddnm_option_specs(const DDNMParams& d) {
  constexpr double kMaxVisits = 100;  // a sane bound; beyond it only with --allow-large
  auto num = [](double v) { return canonical_value(std::to_string(v)); };
  std::vector<OptionSpec> specs = {
      {"respacing", d.respacing,
       "respacing of the model's 1000-step process (guided-diffusion rule)"},
      OptionSpec{"t_T", std::to_string(d.t_T), "steps of the schedule (0 = the respaced size)"}
          .integer()
          .at_least(0),
      OptionSpec{"n_sample", std::to_string(d.n_sample),
                 "up/down resampling moves per step (RePaint rule)"}
          .integer()
          .at_least(1)
          .confirm_above(kMaxVisits),
      OptionSpec{"jump_length", std::to_string(d.jump_length),
                 "time travel: steps back per jump (1 = none)"}
          .integer()
          .at_least(1),
      OptionSpec{"jump_n_sample", std::to_string(d.jump_n_sample),
                 "time travel: visits of each jump point"}
          .integer()
          .at_least(1)
          .confirm_above(kMaxVisits),
      OptionSpec{"eta", num(d.eta), "share of fresh noise in the update"}
          .number()
          .at_least(0)
          .at_most(1),
      OptionSpec{"sigma_y", num(d.sigma_y),
                 "measurement noise level (0 = exact range-space correction)"}
          .number()
          .at_least(0),
      {"clip_denoised", d.clip_denoised ? "true" : "false", "clamp x0 predictions to [-1, 1]"},
      {"paper_update", d.paper_update ? "true" : "false",
       "the DDNM paper's noise-free update (no gamma_t factor; default: the reference's)"},
  };
  const auto measurement = measurement_option_specs(d.mode, d.scale);
  specs.insert(specs.end(), measurement.begin(), measurement.end());
  return specs;
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

int64_t DDNM::expected_forwards() const {
  const auto list = times(DiffusionSchedule::linear(1000).respaced(params_.respacing).size());
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
  at::Tensor x = initial_noise(input);
  int64_t call = 0;
  const int64_t total = static_cast<int64_t>(list.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t t_last = list[k], t_cur = list[k + 1];
    if (t_cur < t_last) {
      x = hooked_x_in(input, call, x);
      const at::Tensor x_in = x;
      const at::Tensor t = batch_steps(t_last, x), t_prev = batch_steps(t_last - 1, x);
      const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
      const at::Tensor a = extract(schedule.alphas_cumprod, t, x);
      const at::Tensor a_prev = extract(schedule.alphas_cumprod, t_prev, x);
      const at::Tensor sigma_t = at::sqrt(at::rsub(at::pow(a, 2), 1.0));
      at::Tensor x0 = (x - eps * at::sqrt(at::rsub(a, 1.0))) / at::sqrt(a);
      if (params_.clip_denoised) x0 = x0.clamp(-1, 1);
      // All samples share t: the reference decides the branch on sample 0.
      const float s0 = sigma_t.reshape({-1})[0].item<float>();
      const float limit = (a_prev.reshape({-1})[0] * sigma_y).item<float>();
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
      x = at::sqrt(a_prev) * x0 + gamma * (c1 * noise + c2 * eps);
      if (input.hooks)
        hooked_record(input, step_record(call, k, t_last, t_last - 1, x_in, eps, x0, x));
      ++call;
    } else {
      x = undo_step(schedule, x, batch_steps(t_cur, x), draw_noise(input, "undo", k, t_cur, x));
    }
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
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
