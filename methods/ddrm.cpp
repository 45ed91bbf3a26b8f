// DDRM for inpainting and super-resolution via the projection onto A's row space.
#include "methods/ddrm.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "framework/core/error.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "methods/degradation.h"
#include "methods/sampling.h"

namespace copaint {

const std::vector<ParamField<DDRMParams>>& ddrm_fields() {
  using P = DDRMParams;
  static const std::vector<ParamField<P>> fields =
      std::vector<ParamField<P>>{
          respacing_field<P>(),
          field("t_T", &P::t_T, "steps (0 = the respaced size)").at_least(0),
          field("eta", &P::eta,
                "etaA = etaC: noise share off the measured subspace (reference 0, DDRM paper 0.85)")
              .at_least(0)
              .at_most(1),
          field("eta_b", &P::eta_b, "etaB: weight of the measurement on the measured subspace")
              .at_least(0)
              .at_most(1),
          field("sigma_0", &P::sigma_0, "measurement noise level (added to y)").at_least(0),
      } +
      measurement_fields<P>();
  return fields;
}

DDRMParams DDRMParams::from_options(const Options& o) {
  DDRMParams p = parse_params(ddrm_fields(), o);
  check_measurement("ddrm", p.mode, p.scale);
  return p;
}

std::vector<OptionSpec> ddrm_option_specs(const DDRMParams& d) {
  return option_specs(ddrm_fields(), d);
}

int64_t DDRM::expected_forwards(int64_t train_steps) const {
  const int64_t size = DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size();
  return resolve_t_T("ddrm", params_.t_T, size) - 1;
}

InpaintOutput DDRM::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const int64_t t_T = resolve_t_T("ddrm", params_.t_T, schedule.size());
  const Degradation deg =
      Degradation::from_mode("ddrm", params_.mode, params_.scale, mask, input.image.size(-1));
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors
  const double s = deg.singular(), sigma_0 = params_.sigma_0, eta = params_.eta,
               eta_b = params_.eta_b;
  // sqrt(1 - ab_t) / sqrt(ab_t) in float32, as the reference computes it on its tensors: the
  // host decides the branches from the schedule, with no read of the device per step.
  const auto host_sigma = [&](int64_t t) {
    const auto a = static_cast<float>(schedule.alphas_cumprod[static_cast<size_t>(t)]);
    return std::sqrt(1.0f - a) / std::sqrt(a);
  };

  // The measurement (with its noise when sigma_0 > 0) and its image-space lift.
  at::Tensor y = deg.A(input.image);
  if (sigma_0 > 0) {
    at::Tensor n = draw_noise(input, "measurement", -1, t_T, y);
    if (deg.is_inpaint()) n = deg.A(n);
    y = y + n * sigma_0;
  }
  const at::Tensor lifted = deg.Ap(y);

  // Initialisation at the largest noise level.
  at::Tensor x = initial_noise(input);
  {
    const at::Tensor a = extract(schedule.alphas_cumprod, batch_steps(t_T - 1, x), x);
    const at::Tensor L = at::sqrt(at::rsub(a, 1.0)) / at::sqrt(a);
    const bool large = static_cast<float>(s) * host_sigma(t_T - 1) > sigma_0;
    const double inv = large ? sigma_0 / s : 0.0;
    const at::Tensor rem_measured = at::sqrt(at::clamp_min(at::pow(L, 2) - inv * inv, 0.0));
    const at::Tensor rem_free = at::sqrt(at::clamp_min(at::pow(L, 2), 0.0));
    at::Tensor init = large ? lifted : at::zeros_like(x);
    if (inv == 0.0) {
      init = init + rem_free * x;
    } else {
      const at::Tensor pz = deg.project(x);
      init = init + rem_measured * pz + rem_free * (x - pz);
    }
    x = init / L;
  }

  InpaintOutput out;
  const int64_t total = t_T - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t t_last = t_T - 1 - k, t_cur = t_last - 1;
    x = hooked_x_in(input, k, x);
    const at::Tensor x_in = x;
    const at::Tensor t = batch_steps(t_last, x), t_next = batch_steps(t_cur, x);
    const at::Tensor a = extract(schedule.alphas_cumprod, t, x);
    const at::Tensor a_next = extract(schedule.alphas_cumprod, t_next, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
    const at::Tensor x0 = (x - eps * at::sqrt(at::rsub(a, 1.0))) / at::sqrt(a);
    const at::Tensor sigma_next = at::sqrt(at::rsub(a_next, 1.0)) / at::sqrt(a_next);
    const float sn = host_sigma(t_cur) * static_cast<float>(s);
    const at::Tensor std_next = sigma_next * eta;
    const at::Tensor tilde_next = at::sqrt(at::pow(sigma_next, 2) - at::pow(std_next, 2));
    const at::Tensor z = draw_noise(input, "step", k, t_last, x);

    const at::Tensor free = x0 + tilde_next * eps + std_next * z;
    at::Tensor measured;
    if (sn > sigma_0) {  // noisier than y
      const at::Tensor diff_b =
          at::sqrt(at::pow(sigma_next, 2) - sigma_0 * sigma_0 / (s * s) * (eta_b * eta_b));
      measured = lifted * eta_b + deg.project(x0) * (1.0 - eta_b) + diff_b * deg.project(z);
    } else if (sn < sigma_0) {  // less noisy than y
      const at::Tensor px0 = deg.project(x0);
      measured = px0 + tilde_next * ((lifted - px0) * (s / sigma_0)) + std_next * deg.project(z);
    } else {
      measured = deg.project(free);
    }
    const at::Tensor x_mod_next = (free - deg.project(free)) + measured;
    x = at::sqrt(a_next) * x_mod_next;
    if (input.hooks) hooked_record(input, step_record(k, k, t_last, t_cur, x_in, eps, x0, x));
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
  return out;
}

void register_ddrm_method(Registry<Method>& registry) {
  registry.add({"ddrm",
                "DDRM: denoising diffusion restoration in A's SVD basis (reference setting: "
                "eta=0, eta_b=1, sigma_0=0)",
                ddrm_option_specs(DDRMParams{}), [](const Options& o) {
                  return std::make_unique<DDRM>(DDRMParams::from_options(o));
                }});
}

}  // namespace copaint
