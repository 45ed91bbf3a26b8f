// The model evaluated at respaced steps, the DDPM posterior and its variance choices.
#include "framework/diffusion/ddpm.h"

#include <cmath>

#include <ATen/ATen.h>

#include "framework/core/error.h"
#include "framework/core/transfer.h"
#include "framework/diffusion/diffusion.h"

namespace copaint {

VarianceType parse_variance_type(const std::string& text, const std::string& key) {
  if (text == "auto") return VarianceType::kAuto;
  if (text == "learned_range") return VarianceType::kLearnedRange;
  if (text == "fixed_small") return VarianceType::kFixedSmall;
  if (text == "fixed_large") return VarianceType::kFixedLarge;
  throw UsageError(key + " must be auto, learned_range, fixed_small or fixed_large, got '" + text +
                   "'");
}

ModelOutput predict_model(Denoiser& model, const DiffusionSchedule& schedule, const at::Tensor& x,
                          const at::Tensor& t, const at::Tensor& y, EvalCounter& counter) {
  // The respaced -> original step map, uploaded once per schedule and device.
  const at::Tensor map = device_table(schedule.timestep_map, t.device());
  const at::Tensor out =
      model.forward(x, map.index_select(0, t.reshape({-1})).reshape(t.sizes()), y);
  ++counter.forwards;
  const int64_t c = x.size(1);
  ModelOutput result;
  result.variance = model.variance();
  if (out.size(1) == c) {
    result.eps = out;
    return result;
  }
  if (out.size(1) != 2 * c) {
    throw InputError("model returned " + std::to_string(out.size(1)) + " channels for a " +
                     std::to_string(c) + "-channel input (expected " + std::to_string(c) + " or " +
                     std::to_string(2 * c) + ")");
  }
  result.eps = out.narrow(1, 0, c);
  result.var_values = out.narrow(1, c, c);
  return result;
}

at::Tensor predict_eps(Denoiser& model, const DiffusionSchedule& schedule, const at::Tensor& x,
                       const at::Tensor& t, const at::Tensor& y, EvalCounter& counter) {
  return predict_model(model, schedule, x, t, y, counter).eps;
}

DdpmCoefficients DdpmCoefficients::from_schedule(const DiffusionSchedule& s) {
  DdpmCoefficients d;
  const int64_t n = s.size();
  for (int64_t t = 0; t < n; ++t) {
    const double beta = s.betas[t], ab = s.alphas_cumprod[t];
    const double abp = t > 0 ? s.alphas_cumprod[t - 1] : 1.0;
    d.alphas_cumprod_prev.push_back(abp);
    d.posterior_variance.push_back(beta * (1.0 - abp) / (1.0 - ab));
    d.posterior_mean_coef1.push_back(beta * std::sqrt(abp) / (1.0 - ab));
    d.posterior_mean_coef2.push_back((1.0 - abp) * std::sqrt(1.0 - beta) / (1.0 - ab));
    d.log_betas.push_back(std::log(beta));
  }
  // Entry 0 of the posterior variance is 0 (ab_{-1} = 1): the reference substitutes entry 1.
  // A one-step process has no entry 1; its step 0 then uses beta_0.
  const double first = n > 1 ? d.posterior_variance[1] : (n > 0 ? s.betas[0] : 1.0);
  for (int64_t t = 0; t < n; ++t) {
    d.posterior_log_variance_clipped.push_back(std::log(t == 0 ? first : d.posterior_variance[t]));
    d.log_large_variance.push_back(std::log(t == 0 ? first : s.betas[t]));
  }
  return d;
}

PosteriorMeanVariance p_mean_variance(const DiffusionSchedule& schedule, const DdpmCoefficients& k,
                                      const at::Tensor& x, const at::Tensor& t,
                                      const ModelOutput& output, VarianceType variance,
                                      bool clip_denoised) {
  PosteriorMeanVariance r;
  if (variance == VarianceType::kAuto) {
    // The model's own: learned with variance channels, else its fixed variance (diffusers'
    // variance_type; the posterior variance for ADM networks without variance channels).
    variance = output.var_values.defined()                     ? VarianceType::kLearnedRange
               : output.variance == ModelVariance::kFixedLarge ? VarianceType::kFixedLarge
                                                               : VarianceType::kFixedSmall;
  }
  switch (variance) {
    case VarianceType::kLearnedRange: {
      if (!output.var_values.defined()) {
        throw UsageError(
            "learned_range variance needs a network with variance channels (learn_sigma)");
      }
      const at::Tensor min_log = extract(k.posterior_log_variance_clipped, t, x);
      const at::Tensor max_log = extract(k.log_betas, t, x);
      const at::Tensor frac = (output.var_values + 1) / 2;
      r.log_variance = frac * max_log + at::rsub(frac, 1) * min_log;
      break;
    }
    case VarianceType::kFixedSmall:
      r.log_variance = extract(k.posterior_log_variance_clipped, t, x);
      break;
    case VarianceType::kFixedLarge:
      r.log_variance = extract(k.log_large_variance, t, x);
      break;
    case VarianceType::kAuto:
      break;
  }
  r.pred_x0 = x0_from_eps(schedule, x, t, output.eps);
  if (clip_denoised) r.pred_x0 = r.pred_x0.clamp(-1, 1);
  r.mean =
      extract(k.posterior_mean_coef1, t, x) * r.pred_x0 + extract(k.posterior_mean_coef2, t, x) * x;
  return r;
}

DiffusionSchedule method_schedule(const Denoiser& model, const std::string& respacing) {
  return model.train_schedule().respaced(respacing);
}

int64_t resolve_t_T(const std::string& method, int64_t t_T, int64_t respaced_size) {
  if (t_T < 0) throw UsageError(method + ".t_T must be >= 0 (0 = the respaced process's size)");
  if (t_T == 0) return respaced_size;
  if (t_T > respaced_size) {
    throw UsageError(method + ".t_T (" + std::to_string(t_T) + ") exceeds the respaced process (" +
                     std::to_string(respaced_size) + " steps)");
  }
  return t_T;
}

}  // namespace copaint
