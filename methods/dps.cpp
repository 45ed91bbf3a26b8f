// DPS: diffusion posterior sampling with the measurement-norm gradient through the network.
#include "methods/dps.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "framework/core/error.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "methods/degradation.h"
#include "methods/gradients.h"
#include "methods/sampling.h"

namespace copaint {

const std::vector<ParamField<DPSParams>>& dps_fields() {
  using P = DPSParams;
  static const std::vector<ParamField<P>> fields =
      std::vector<ParamField<P>>{
          respacing_field<P>(),
          field("t_T", &P::t_T, "steps (0 = the respaced size)").at_least(0),
          field("step_size", &P::step_size,
                "gradient scale (reference: 1.0 CelebA-HQ, 0.5 ImageNet)")
              .at_least(0),
          field("eta", &P::eta, "DDIM sigma scale (1 = DDPM-like)").at_least(0),
          field("measurement_sigma", &P::measurement_sigma, "noise added to the measurement y")
              .at_least(0),
          field("batch_norm", &P::batch_norm, "reference behaviour: one norm over the whole batch"),
          clip_denoised_field<P>(),
      } +
      measurement_fields<P>();
  return fields;
}

DPSParams DPSParams::from_options(const Options& o) {
  DPSParams p = parse_params(dps_fields(), o);
  check_measurement("dps", p.mode, p.scale);
  return p;
}

std::vector<OptionSpec> dps_option_specs(const DPSParams& d) {
  return option_specs(dps_fields(), d);
}

int64_t DPS::expected_forwards(int64_t train_steps) const {
  const int64_t size = DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size();
  return resolve_t_T("dps", params_.t_T, size) - 1;
}

InpaintOutput DPS::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const int64_t t_T = resolve_t_T("dps", params_.t_T, schedule.size());
  const Degradation deg =
      Degradation::from_mode("dps", params_.mode, params_.scale, mask, input.image.size(-1));
  at::Tensor measurement;
  {
    at::NoGradGuard no_grad;
    measurement = deg.A(input.image);
    if (params_.measurement_sigma > 0) {
      measurement = measurement + draw_noise(input, "measurement", -1, t_T, measurement) *
                                      params_.measurement_sigma;
    }
  }

  InpaintOutput out;
  at::Tensor x = initial_noise(input).detach();
  const int64_t total = t_T - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t t_last = t_T - 1 - k;
    at::AutoGradMode enable_grad(true);
    x = hooked_x_in(input, k, x.detach()).detach().requires_grad_(true);
    const at::Tensor t = batch_steps(t_last, x), t_prev = batch_steps(t_last - 1, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
    at::Tensor x0 = x0_from_eps(schedule, x, t, eps);
    if (params_.clip_denoised) x0 = x0.clamp(-1, 1);
    const at::Tensor diff = measurement - deg.A(x0);
    // linalg_vector_norm's backward is 0 (not NaN) where the norm is 0, e.g. a sample with no
    // known pixel.
    const at::Tensor losses = params_.batch_norm
                                  ? at::linalg_vector_norm(diff, 2).reshape({1})
                                  : at::linalg_vector_norm(diff, 2, at::IntArrayRef{1, 2, 3});
    const at::Tensor norm = params_.batch_norm ? losses.reshape({}) : losses.sum();
    const at::Tensor grad = guarded_grad(losses, x, model.reduced_precision(), out.evals).grad;
    at::NoGradGuard no_grad;
    const at::Tensor x0_d = x0.detach(), x_d = x.detach();
    const at::Tensor eps_x0 = eps_from_x0(schedule, x_d, t, x0_d);
    const at::Tensor noise = draw_noise(input, "step", k, t_last, x_d);
    const at::Tensor stepped = ddim_step(schedule, x0_d, eps_x0, t, t_prev, params_.eta, noise);
    x = stepped - grad.detach() * params_.step_size;
    if (input.hooks) {
      StepRecord r = step_record(k, k, t_last, t_last - 1, x_d, eps.detach(), x0_d, x);
      r.grad = grad.detach();
      r.norm = norm.detach();
      hooked_record(input, r);
    }
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.detach().clamp(-1, 1);
  return out;
}

void register_dps_method(Registry<Method>& registry) {
  registry.add({"dps",
                "DPS: DDIM (eta=1) steps plus step_size * gradient of ||y - A x0_hat|| through "
                "the network",
                dps_option_specs(DPSParams{}), [](const Options& o) {
                  return std::make_unique<DPS>(DPSParams::from_options(o));
                }});
}

}  // namespace copaint
