// Per-step diffusion helpers on tensors: broadcasting, x0 <-> eps, DDIM step, q_sample, undo.
#include "framework/diffusion/diffusion.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "framework/core/error.h"
#include "framework/core/transfer.h"

namespace copaint {
namespace {

/// t (0-d or [B] integer tensor) flattened to int64 [B], on its own device. On the CPU every
/// step is checked to lie in [lo, hi) (UsageError naming `what`); on a GPU reading t would block,
/// so only its shape and type are checked there (samplers build t from host integers with
/// batch_steps, which the CPU runs of the same code check).
at::Tensor checked_steps(const at::Tensor& t, int64_t lo, int64_t hi, const char* what) {
  if (!t.defined()) throw UsageError("diffusion: timestep tensor is undefined");
  if (t.dim() > 1) {
    throw InputError("diffusion: timesteps must be 0-d or [B], got " + std::to_string(t.dim()) +
                     " dims");
  }
  if (at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type())) {
    throw InputError("diffusion: timesteps must be an integer tensor");
  }
  at::Tensor flat = t.reshape({-1});
  if (flat.scalar_type() != at::kLong) flat = flat.to(at::kLong);
  if (flat.device().is_cpu()) {
    flat = flat.contiguous();
    const int64_t* p = flat.data_ptr<int64_t>();
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (p[i] < lo || p[i] >= hi) {
        throw UsageError(std::string(what) + ": timestep " + std::to_string(p[i]) + " outside [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + ")");
      }
    }
  }
  return flat;
}

/// v ([n]) reshaped to [n,1,...,1] with x.dim() dimensions (at least one).
at::Tensor batch_shaped(const at::Tensor& v, const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), 1);
  shape[0] = v.numel();
  return v.reshape(shape);
}

/// table[steps_b + offset] per sample, gathered on the table's device (x's), cast from double to
/// float32 (double when x is double) and shaped [B,1,...,1] like per_sample.
at::Tensor gather(const at::Tensor& table, const at::Tensor& steps, const at::Tensor& x,
                  int64_t offset = 0) {
  const at::ScalarType dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor index = steps.device() == table.device() ? steps : steps.to(table.device());
  if (offset != 0) index = index + offset;
  return batch_shaped(table.index_select(0, index).to(dtype), x);
}

/// The schedule's alpha bars with alpha_bar(-1) = 1 in front (entry t + 1 is alpha_bar(t)),
/// mapped by f, as a device table (uploaded once per schedule, device and f's tag).
at::Tensor alpha_bar_table(const DiffusionSchedule& schedule, const at::Tensor& x,
                           const std::string& tag, double (*f)(double)) {
  return device_table(schedule.alphas_cumprod, x.device(), "alpha_bar:" + tag,
                      [f](const std::vector<double>& ab) {
                        std::vector<double> out{f(1.0)};
                        for (double v : ab) out.push_back(f(v));
                        return out;
                      });
}

/// f(alpha_bar(t_b)) per sample, t in [-1, size()).
at::Tensor alpha_bar_term(const DiffusionSchedule& schedule, const at::Tensor& t,
                          const at::Tensor& x, const std::string& tag, double (*f)(double)) {
  const at::Tensor steps = checked_steps(t, -1, schedule.size(), "alpha_bar");
  return gather(alpha_bar_table(schedule, x, tag, f), steps, x, /*offset=*/1);
}

double identity(double v) { return v; }
double sqrt_recip(double ab) { return std::sqrt(1.0 / ab); }
double sqrt_recip_m1(double ab) { return std::sqrt(1.0 / ab - 1.0); }
double sqrt_of(double ab) { return std::sqrt(ab); }
double sqrt_one_minus(double ab) { return std::sqrt(1.0 - ab); }

}  // namespace

at::Tensor per_sample(const at::Tensor& v, const at::Tensor& x) {
  const int64_t n = v.numel();
  const int64_t batch = x.dim() > 0 ? x.size(0) : 1;
  if (v.dim() > 1 || (n != 1 && n != batch)) {
    throw InputError("per_sample: a per-sample value must be a scalar or [" +
                     std::to_string(batch) + "], got " + std::to_string(n) + " elements in " +
                     std::to_string(v.dim()) + " dims");
  }
  return batch_shaped(v.reshape({-1}), x).to(x.device());
}

at::Tensor batch_steps(int64_t t, const at::Tensor& x) {
  const int64_t batch = x.dim() > 0 ? x.size(0) : 1;
  return at::full({batch}, t, at::TensorOptions().dtype(at::kLong).device(x.device()));
}

at::Tensor extract(const std::vector<double>& values, const at::Tensor& t, const at::Tensor& x) {
  const at::Tensor steps = checked_steps(t, 0, static_cast<int64_t>(values.size()), "extract");
  return gather(device_table(values, x.device()), steps, x);
}

at::Tensor alpha_bar_at(const DiffusionSchedule& schedule, const at::Tensor& t,
                        const at::Tensor& x) {
  return alpha_bar_term(schedule, t, x, "", identity);
}

at::Tensor x0_from_eps(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& eps) {
  const at::Tensor recip = alpha_bar_term(schedule, t, x_t, "sqrt_recip", sqrt_recip);
  const at::Tensor recipm1 = alpha_bar_term(schedule, t, x_t, "sqrt_recip_m1", sqrt_recip_m1);
  return recip * x_t - recipm1 * eps;
}

at::Tensor eps_from_x0(const DiffusionSchedule& schedule, const at::Tensor& x_t,
                       const at::Tensor& t, const at::Tensor& x0) {
  const at::Tensor recip = alpha_bar_term(schedule, t, x_t, "sqrt_recip", sqrt_recip);
  const at::Tensor recipm1 = alpha_bar_term(schedule, t, x_t, "sqrt_recip_m1", sqrt_recip_m1);
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
  const at::Tensor steps = checked_steps(t, -1, schedule.size(), "ddim_step");
  const at::ScalarType dtype = x0.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor nonzero = batch_shaped(steps.ne(0).to(dtype), x0);
  return mean + noise * sigma * nonzero;
}

at::Tensor q_sample(const DiffusionSchedule& schedule, const at::Tensor& x0, const at::Tensor& t,
                    const at::Tensor& noise) {
  const at::Tensor c0 = alpha_bar_term(schedule, t, x0, "sqrt", sqrt_of);
  const at::Tensor c1 = alpha_bar_term(schedule, t, x0, "sqrt_one_minus", sqrt_one_minus);
  return c0 * x0 + c1 * noise;
}

at::Tensor undo_step(const DiffusionSchedule& schedule, const at::Tensor& x,
                     const at::Tensor& t_next, const at::Tensor& noise) {
  const at::Tensor beta = extract(schedule.betas, t_next, x);
  return at::sqrt(at::rsub(beta, 1.0)) * x + at::sqrt(beta) * noise;
}

}  // namespace copaint
