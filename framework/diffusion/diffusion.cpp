// Per-step diffusion helpers on tensors: broadcasting, x0 <-> eps, DDIM step, q_sample, undo.
#include "framework/diffusion/diffusion.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "framework/core/error.h"

namespace copaint {
namespace {

/// The integer steps of t (0-d or [B], any device) as a host vector.
std::vector<int64_t> host_steps(const at::Tensor& t) {
  if (!t.defined()) throw UsageError("diffusion: timestep tensor is undefined");
  if (t.dim() > 1) {
    throw InputError("diffusion: timesteps must be 0-d or [B], got " + std::to_string(t.dim()) +
                     " dims");
  }
  if (at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type())) {
    throw InputError("diffusion: timesteps must be an integer tensor");
  }
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous().reshape({-1});
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

/// Per-sample doubles -> float32 (double when x is double) tensor shaped by per_sample.
at::Tensor coefficient(const std::vector<double>& values, const at::Tensor& x) {
  const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor v = at::tensor(at::ArrayRef<double>(values), at::TensorOptions().dtype(at::kDouble));
  return per_sample(v.to(dtype), x);
}

/// f(step) for every step of t, as a coefficient tensor.
template <typename F>
at::Tensor per_step(const at::Tensor& t, const at::Tensor& x, F f) {
  std::vector<double> values;
  for (int64_t s : host_steps(t)) values.push_back(f(s));
  return coefficient(values, x);
}

}  // namespace

at::Tensor per_sample(const at::Tensor& v, const at::Tensor& x) {
  const int64_t n = v.numel();
  const int64_t batch = x.dim() > 0 ? x.size(0) : 1;
  if (v.dim() > 1 || (n != 1 && n != batch)) {
    throw InputError("per_sample: a per-sample value must be a scalar or [" +
                     std::to_string(batch) + "], got " + std::to_string(n) + " elements in " +
                     std::to_string(v.dim()) + " dims");
  }
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), 1);
  shape[0] = n;
  return v.reshape(shape).to(x.device());
}

at::Tensor batch_steps(int64_t t, const at::Tensor& x) {
  const int64_t batch = x.dim() > 0 ? x.size(0) : 1;
  return at::full({batch}, t, at::TensorOptions().dtype(at::kLong).device(x.device()));
}

at::Tensor extract(const std::vector<double>& values, const at::Tensor& t, const at::Tensor& x) {
  return per_step(t, x, [&](int64_t s) {
    if (s < 0 || s >= static_cast<int64_t>(values.size())) {
      throw UsageError("extract: timestep " + std::to_string(s) + " outside [0, " +
                       std::to_string(values.size()) + ")");
    }
    return values[static_cast<size_t>(s)];
  });
}

at::Tensor alpha_bar_at(const DiffusionSchedule& schedule, const at::Tensor& t,
                        const at::Tensor& x) {
  return per_step(t, x, [&](int64_t s) { return schedule.alpha_bar(s); });
}

at::Tensor x0_from_eps(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& eps) {
  const at::Tensor recip =
      per_step(t, x_t, [&](int64_t s) { return std::sqrt(1.0 / schedule.alpha_bar(s)); });
  const at::Tensor recipm1 =
      per_step(t, x_t, [&](int64_t s) { return std::sqrt(1.0 / schedule.alpha_bar(s) - 1.0); });
  return recip * x_t - recipm1 * eps;
}

at::Tensor eps_from_x0(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& x0) {
  const at::Tensor recip =
      per_step(t, x_t, [&](int64_t s) { return std::sqrt(1.0 / schedule.alpha_bar(s)); });
  const at::Tensor recipm1 =
      per_step(t, x_t, [&](int64_t s) { return std::sqrt(1.0 / schedule.alpha_bar(s) - 1.0); });
  return (recip * x_t - x0) / recipm1;
}

at::Tensor ddim_sigma(const DiffusionSchedule& schedule, const at::Tensor& t,
                      const at::Tensor& prev_t, double eta, const at::Tensor& x) {
  const at::Tensor a = alpha_bar_at(schedule, t, x);
  const at::Tensor p = alpha_bar_at(schedule, prev_t, x);
  return at::sqrt(at::rsub(p, 1.0) / at::rsub(a, 1.0)).mul(eta) * at::sqrt(at::rsub(a / p, 1.0));
}

at::Tensor ddim_step(const DiffusionSchedule& schedule, const at::Tensor& x0, const at::Tensor& eps,
                     const at::Tensor& t, const at::Tensor& prev_t, double eta,
                     const at::Tensor& noise) {
  const at::Tensor p = alpha_bar_at(schedule, prev_t, x0);
  const at::Tensor sigma = ddim_sigma(schedule, t, prev_t, eta, x0);
  const at::Tensor dir = at::sqrt(at::rsub(p, 1.0) - sigma * sigma);
  at::Tensor mean = x0 * at::sqrt(p) + dir * eps;
  if (!noise.defined()) return mean;
  const at::Tensor nonzero = per_step(t, x0, [](int64_t s) { return s != 0 ? 1.0 : 0.0; });
  return mean + noise * sigma * nonzero;
}

at::Tensor q_sample(const DiffusionSchedule& schedule, const at::Tensor& x0, const at::Tensor& t,
                    const at::Tensor& noise) {
  const at::Tensor c0 =
      per_step(t, x0, [&](int64_t s) { return std::sqrt(schedule.alpha_bar(s)); });
  const at::Tensor c1 =
      per_step(t, x0, [&](int64_t s) { return std::sqrt(1.0 - schedule.alpha_bar(s)); });
  return c0 * x0 + c1 * noise;
}

at::Tensor undo_step(const DiffusionSchedule& schedule, const at::Tensor& x,
                     const at::Tensor& t_next, const at::Tensor& noise) {
  const at::Tensor beta = extract(schedule.betas, t_next, x);
  return at::sqrt(at::rsub(beta, 1.0)) * x + at::sqrt(beta) * noise;
}

}  // namespace copaint
