// CoPaint, CoPaint-TT and CoPaint-Fast: the per-step optimisation of x_t and the sampling loop,
// written from the paper's math and checked against the reference's recorded runs.
//
// Work saved against the reference: with the adaptive learning rate the reference evaluates every
// accepted trial point twice (once without a graph to test the loss, once with a graph for the
// next gradient). Here the trial forward is built with a graph and, once accepted, is reused as
// the next iteration's graph (the last iteration's trial needs no graph at all), so a call costs
// 1 + G forwards (times the hops of a multi-hop prediction) plus one per backtracking round.
#include "methods/copaint.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <sstream>

#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/transfer.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "methods/degradation.h"
#include "methods/gradients.h"
#include "methods/sampling.h"

namespace copaint {
namespace {

struct Prediction {
  at::Tensor eps;      // e_t at x
  at::Tensor pred_x0;  // (multi-hop) x0 prediction
};

at::Tensor steps_tensor(int64_t t, const at::Tensor& x) { return batch_steps(t, x); }

/// DDIM noise (eta > 0 only): one draw per hop of the x0 prediction and one for the final
/// update, made once per call so that re-evaluations while backtracking reuse the same noise and
/// a sample's draws do not depend on how often its batch backtracks.
std::vector<at::Tensor> draw_eta_noise(const CoPaintParams& p, const CoPaintTarget& target,
                                       const at::Tensor& x_in, int64_t t,
                                       const std::vector<int64_t>& hops) {
  std::vector<at::Tensor> noise;
  if (p.eta == 0) return noise;
  static const std::vector<at::Generator> kNone;
  const std::vector<at::Generator>& generators =
      target.generators != nullptr ? *target.generators : kNone;
  for (size_t i = 0; i < hops.size(); ++i) {
    DrawRequest r;
    r.role = i + 1 < hops.size() ? "ddim_hop" : "ddim";
    r.step = target.step;
    r.t = i + 1 < hops.size() ? hops[i] : t;
    r.like = x_in;
    noise.push_back(draw_randn(target.noise, generators, std::move(r)));
  }
  return noise;
}

/// Per-sample learning rates of the x_t updates (one shared entry when batch-coupled), kept on
/// the run's device in float64: shrinking them there is the host's double arithmetic, and no
/// rate travels to the device per gradient step.
class LearningRates {
 public:
  /// `batch` rates of `lr` (one when `coupled`).
  LearningRates(double lr, int64_t batch, bool coupled)
      : lr_(lr), count_(coupled ? 1 : batch), coupled_(coupled) {}

  /// The rates in `like`'s dtype (on its device), shaped to broadcast over [B,C,H,W].
  at::Tensor tensor(const at::Tensor& like) {
    if (!lrs_.defined()) {
      lrs_ = at::full({count_}, lr_, at::TensorOptions().dtype(at::kDouble).device(like.device()));
    }
    return lrs_.to(like.scalar_type()).reshape({coupled_ ? 1 : count_, 1, 1, 1});
  }

  /// Multiplies the rates of the rejected entries (`rejected`: bool [count] on the device) by 0.8.
  void shrink(const at::Tensor& rejected) { lrs_ = at::where(rejected, lrs_ * 0.8, lrs_); }

  /// Sets the rates of the rejected entries to 0: those samples stay where they are.
  void stop(const at::Tensor& rejected) { lrs_ = lrs_.masked_fill(rejected, 0.0); }

 private:
  double lr_;
  int64_t count_;
  bool coupled_;
  at::Tensor lrs_;
};

/// What one CoPaint::step call optimises at respaced step t: the (multi-hop) prediction, the
/// masked fit and the regulariser, and the gradient steps on x_t.
class StepProblem {
 public:
  /// The problem of optimising `x_in` at step `t` towards `target`; draws the call's DDIM noise.
  StepProblem(const CoPaintParams& p, Denoiser& model, const DiffusionSchedule& schedule,
              const CoPaintTarget& target, const at::Tensor& x_in, int64_t t, EvalCounter& counter)
      : p_(p),
        model_(model),
        schedule_(schedule),
        target_(target),
        counter_(counter),
        t_(t),
        batch_(x_in.size(0)),
        t_vec_(steps_tensor(t, x_in)),
        hops_(mid_interval_steps(t, p.mid_interval_num)),
        noise_(draw_eta_noise(p, target, x_in, t, hops_)),
        origin_(x_in.detach().clone()) {}

  /// The hops of the x0 prediction, from t down to 0.
  const std::vector<int64_t>& hops() const { return hops_; }

  /// One DDIM update from `x` at cur to prev given eps (the reference's get_update), with the
  /// call's noise number `noise_index`; pred_x0 undefined = from eps.
  at::Tensor update(const at::Tensor& x, int64_t cur, int64_t prev, const at::Tensor& eps,
                    const at::Tensor& pred_x0, size_t noise_index) const {
    const at::Tensor cur_v = steps_tensor(cur, x), prev_v = steps_tensor(prev, x);
    at::Tensor x0 = pred_x0.defined() ? pred_x0 : process_x0(x0_from_eps(schedule_, x, cur_v, eps));
    const at::Tensor noise = noise_.empty() ? at::Tensor() : noise_[noise_index];
    return ddim_step(schedule_, x0, eps, cur_v, prev_v, p_.eta, noise);
  }

  /// e_t and the (multi-hop) x0 prediction at x.
  Prediction predict(const at::Tensor& x) {
    Prediction out;
    out.eps = predict_eps(model_, schedule_, x, t_vec_, target_.y, counter_);
    if (p_.mid_interval_num == 1) {
      out.pred_x0 = process_x0(x0_from_eps(schedule_, x, t_vec_, out.eps));
      return out;
    }
    at::Tensor xt = x, eps = out.eps;
    for (size_t i = 0; i + 1 < hops_.size(); ++i) {
      if (i != 0)
        eps = predict_eps(model_, schedule_, xt, steps_tensor(hops_[i], xt), target_.y, counter_);
      xt = update(xt, hops_[i], hops_[i + 1], eps, at::Tensor(), i);
    }
    out.pred_x0 = process_x0(xt);
    return out;
  }

  /// Masked fit term per sample [B] (or its batch sum when coupled, as a [1] tensor).
  at::Tensor fit(const at::Tensor& pred_x0) const {
    at::Tensor diff;
    if (p_.mode == Measurement::kInpaint) {
      diff = target_.x0 * target_.mask - pred_x0 * target_.mask;
    } else {
      const int64_t size = pred_x0.size(-1) / p_.scale;
      diff = at::adaptive_avg_pool2d(target_.x0, {size, size}).expand({batch_, -1, size, size}) -
             at::adaptive_avg_pool2d(pred_x0, {size, size});
    }
    if (diff.size(0) != batch_) diff = diff.expand({batch_, -1, -1, -1});
    return p_.batch_coupled ? at::pow(diff, 2).sum().reshape({1}) : at::pow(diff, 2).sum({1, 2, 3});
  }

  /// ||x - x_in||^2 per sample [B] (or its batch sum when coupled, as a [1] tensor).
  at::Tensor reg(const at::Tensor& x) const {
    return p_.batch_coupled ? at::pow(origin_ - x, 2).sum().reshape({1})
                            : at::pow(origin_ - x, 2).sum({1, 2, 3});
  }

  /// One gradient step on `x` (whose prediction `pred` holds a graph) with regulariser weight
  /// `coef`: x and pred become the accepted point and its prediction (with a graph unless
  /// `last`); backtracking rounds are added to `backtracks`.
  void descend(at::Tensor& x, Prediction& pred, bool last, double coef, LearningRates& lrs,
               int64_t& backtracks) {
    at::Tensor loss = fit(pred.pred_x0) + coef * reg(x);
    const at::Tensor grad = guarded_grad(loss, x, model_.reduced_precision(), counter_).grad;
    loss = loss.detach();
    const at::Tensor x_base = x.detach();
    at::Tensor new_x = x_base - lrs.tensor(grad) * grad;
    Prediction trial;
    at::AutoGradMode grad_mode(!last);  // the last iteration's trial needs no graph
    x = line_search(x_base, grad, loss, new_x, last, coef, lrs, trial, backtracks);
    pred = trial;
  }

 private:
  /// Clamps an x0 prediction to [-1, 1] when clip_denoised.
  at::Tensor process_x0(const at::Tensor& v) const { return p_.clip_denoised ? v.clamp(-1, 1) : v; }

  /// From the trial point `new_x` = x_base - lr grad: with adaptive_lr, shrinks the rates of the
  /// samples whose loss grew above `loss` (or is NaN) by 0.8 until none does, for at most
  /// max_backtracks rounds, after which those samples stay at x_base. Returns the accepted point;
  /// `trial` gets its prediction.
  at::Tensor line_search(const at::Tensor& x_base, const at::Tensor& grad, const at::Tensor& loss,
                         at::Tensor new_x, bool last, double coef, LearningRates& lrs,
                         Prediction& trial, int64_t& backtracks) {
    for (int64_t round = 0;; ++round) {
      if (!last) new_x = new_x.detach().requires_grad_(true);
      trial = predict(new_x);
      if (!p_.adaptive_lr) break;
      at::Tensor new_loss;
      {
        at::NoGradGuard no_grad;
        new_loss = fit(trial.pred_x0) + coef * reg(new_x);
      }
      // Accept where the loss did not grow (NaN never accepted). Whether any sample is rejected
      // is the one host read of a gradient step (the host-sync budget).
      const at::Tensor reject = new_loss.isnan() | (new_loss > loss);
      if (!to_host(reject.any()).data_ptr<bool>()[0]) break;
      if (round >= p_.max_backtracks) {
        // Give up on the samples still rejected: they stay where they are (lr 0), so a growing
        // or NaN loss never gets through.
        log_warn("copaint: learning-rate backtracking stopped after " +
                 std::to_string(p_.max_backtracks) + " rounds at t=" + std::to_string(t_));
        lrs.stop(reject);
        new_x = x_base - lrs.tensor(grad) * grad;
        if (!last) new_x = new_x.detach().requires_grad_(true);
        trial = predict(new_x);
        break;
      }
      lrs.shrink(reject);
      ++backtracks;
      new_x = x_base - lrs.tensor(grad) * grad;
    }
    return new_x;
  }

  const CoPaintParams& p_;
  Denoiser& model_;
  const DiffusionSchedule& schedule_;
  const CoPaintTarget& target_;
  EvalCounter& counter_;
  const int64_t t_;
  const int64_t batch_;
  const at::Tensor t_vec_;
  const std::vector<int64_t> hops_;
  const std::vector<at::Tensor> noise_;
  const at::Tensor origin_;
};

}  // namespace

const std::vector<ParamField<CoPaintParams>>& copaint_fields() {
  // Sane bounds (the paper uses G <= 5, K = 2); beyond them only with --allow-large.
  constexpr double kMaxGradientSteps = 1000, kMaxVisits = 100;
  using P = CoPaintParams;
  static const std::vector<ParamField<P>> fields =
      std::vector<ParamField<P>>{
          respacing_field<P>(),
          field("steps", &P::steps, "DDIM steps over the respaced process (0 = all)").at_least(0),
          schedule_type_field<P>(),
          field("G", &P::G, "gradient steps on x_t per denoising step")
              .at_least(0)
              .confirm_above(kMaxGradientSteps),
          field("lr_xt", &P::lr_xt, "learning rate of the x_t updates").above(0),
          field("lr_xt_decay", &P::lr_xt_decay, "learning rate multiplied by this after every step")
              .above(0),
          field("coef_xt_reg", &P::coef_xt_reg, "weight of ||x_t - x_t_start||^2").at_least(0),
          field("coef_xt_reg_decay", &P::coef_xt_reg_decay,
                "regulariser weight multiplied by this per step")
              .above(0),
          field("smart_lr", &P::smart_lr,
                "divide lr by prod sqrt(1/ab_t) sqrt(ab_prev) over the hops to 0"),
          field("adaptive_lr", &P::adaptive_lr, "backtrack lr *= 0.8 until the loss does not grow"),
          field("mid_interval_num", &P::mid_interval_num,
                "hops of the x0 prediction (>1: multi-hop)")
              .at_least(1)
              .confirm_above(kMaxGradientSteps),
          field("eta", &P::eta, "DDIM sigma scale (0 = deterministic DDIM)").at_least(0),
          field("time_travel", &P::time_travel, "time travel (CoPaint-TT)"),
          field("jump_length", &P::jump_length, "time travel: steps travelled back (tau)")
              .at_least(1),
          field("jump_n_sample", &P::jump_n_sample, "time travel: visits of each jump point (K)")
              .at_least(1)
              .confirm_above(kMaxVisits),
          field("time_travel_filter", &P::time_travel_filter,
                "none | firstp-P | lastp-P | firstn-N | lastn-N"),
          field("optimize_before_time_travel", &P::optimize_before_time_travel,
                "optimise x_t before travelling back"),
          field("batch_coupled", &P::batch_coupled,
                "reference behaviour: backtracking decided on the batch's summed loss"),
          field("max_backtracks", &P::max_backtracks,
                "cap on backtracking rounds per gradient step")
              .at_least(0)
              .confirm_above(kMaxGradientSteps),
          clip_denoised_field<P>(),
      } +
      measurement_fields<P>();
  return fields;
}

CoPaintParams CoPaintParams::from_options(const Options& o) {
  CoPaintParams p = parse_params(copaint_fields(), o);
  check_measurement("copaint", p.mode, p.scale);
  // The filter is checked with time travel off too: a typo must not pass (nor make a cell).
  try {
    ddim_timetravel_timesteps(2, 2, 1, 1, p.time_travel_filter);
  } catch (const UsageError& e) {
    throw UsageError(std::string("option 'copaint.time_travel_filter': ") + e.what());
  }
  return p;
}

std::vector<OptionSpec> copaint_option_specs(const CoPaintParams& d) {
  return option_specs(copaint_fields(), d);
}

std::vector<int64_t> CoPaint::timesteps(int64_t respaced_size) const {
  const int64_t n = params_.steps > 0 ? params_.steps : respaced_size;
  if (n > respaced_size) {
    throw UsageError("copaint.steps (" + std::to_string(n) + ") exceeds the respaced process (" +
                     std::to_string(respaced_size) + " steps)");
  }
  if (params_.time_travel) {
    if (params_.jump_n_sample > 1 && respaced_size / n > 1) {
      throw UsageError("copaint: time travel needs copaint.steps equal to the respaced size (" +
                       std::to_string(respaced_size) + "), got " + std::to_string(n) +
                       ": it travels back one respaced step at a time");
    }
    return ddim_timetravel_timesteps(n, respaced_size, params_.jump_length, params_.jump_n_sample,
                                     params_.time_travel_filter);
  }
  return ddim_timesteps(n, respaced_size, schedule_type_name(params_.schedule_type));
}

int64_t CoPaint::expected_forwards(int64_t train_steps) const {
  // Without backtracking: (1 + G) evaluations per call, times the hops of the x0 prediction.
  const int64_t size = DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size();
  const std::vector<int64_t> steps = timesteps(size);
  int64_t total = 0;
  bool reversing = false;
  for (size_t k = 0; k + 1 < steps.size(); ++k) {
    const int64_t cur = steps[k];
    const bool down = cur > steps[k + 1];
    const bool calls = down || (reversing && params_.optimize_before_time_travel);
    if (calls) {
      const int64_t hops =
          static_cast<int64_t>(mid_interval_steps(cur, params_.mid_interval_num).size()) - 1;
      total += (1 + params_.G) * std::max<int64_t>(1, hops);
    }
    reversing = down;
  }
  return total;
}

CoPaintStepResult CoPaint::step(Denoiser& model, const DiffusionSchedule& schedule,
                                const CoPaintTarget& target, const at::Tensor& x_in, int64_t t,
                                int64_t prev_t, double lr_xt, double coef_xt_reg,
                                EvalCounter& counter) const {
  const CoPaintParams& p = params_;
  StepProblem problem(p, model, schedule, target, x_in, t, counter);
  double lr = lr_xt;
  if (p.smart_lr) lr /= smart_lr_decay_rate(schedule, t, p.mid_interval_num);
  LearningRates lrs(lr, x_in.size(0), p.batch_coupled);

  CoPaintStepResult result;
  at::AutoGradMode enable_grad(true);  // callers may run under no-grad
  at::Tensor x = x_in.detach().requires_grad_(p.G > 0);
  Prediction pred;
  {
    at::AutoGradMode grad_mode(p.G > 0);
    pred = problem.predict(x);
  }
  for (int64_t it = 0; it < p.G; ++it) {
    problem.descend(x, pred, /*last=*/it + 1 == p.G, coef_xt_reg, lrs, result.backtracks);
  }

  at::NoGradGuard no_grad;
  result.x_opt = x.detach();
  result.pred_x0 = pred.pred_x0.detach();
  const at::Tensor eps = pred.eps.detach();
  result.x_prev = problem.update(result.x_opt, t, prev_t, eps,
                                 p.mid_interval_num == 1 ? result.pred_x0 : at::Tensor(),
                                 problem.hops().size() - 1);
  result.loss = problem.fit(result.pred_x0).detach();
  return result;
}

InpaintOutput CoPaint::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const std::vector<int64_t> steps = timesteps(schedule.size());
  CoPaintTarget target{input.image, mask, input.y, &input.generators, &input.noise};

  InpaintOutput out;
  at::Tensor x = initial_noise(input);
  double lr = params_.lr_xt, coef = params_.coef_xt_reg;
  bool reversing = false;
  const int64_t total = static_cast<int64_t>(steps.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t cur = steps[k], prev = steps[k + 1];
    if (cur > prev) {
      target.step = k;
      CoPaintStepResult r = step(model, schedule, target, x, cur, prev, lr, coef, out.evals);
      x = r.x_prev;
      if (trace) trace->push_back(std::move(r));
      lr *= params_.lr_xt_decay;
      coef *= params_.coef_xt_reg_decay;
      reversing = true;
    } else {
      if (reversing && params_.optimize_before_time_travel) {
        target.step = k;
        CoPaintStepResult r = step(model, schedule, target, x, cur, 0, lr, coef, out.evals);
        x = r.x_opt;
        if (trace) trace->push_back(std::move(r));
      }
      reversing = false;
      if (prev != cur + 1) {
        throw UsageError("copaint: time travel only goes back one respaced step at a time (got " +
                         std::to_string(cur) + " -> " + std::to_string(prev) +
                         "); use copaint.steps equal to the respaced size");
      }
      at::NoGradGuard no_grad;
      x = undo_step(schedule, x, steps_tensor(prev, x), draw_noise(input, "undo", k, prev, x));
      lr /= params_.lr_xt_decay;
      coef /= params_.coef_xt_reg_decay;
    }
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
  return out;
}

void register_copaint_methods(Registry<Method>& registry) {
  auto factory = [](const Options& o) {
    return std::make_unique<CoPaint>(CoPaintParams::from_options(o));
  };
  // Time travel stays within the schedule: tau below the DDIM steps taken.
  auto check = [](const std::string& name, const Options& o) {
    if (o.get_bool("time_travel")) check_jump_length(name, o, "steps");
  };

  CoPaintParams base;
  base.jump_length = 1;
  base.jump_n_sample = 1;
  registry.add(
      {"copaint",
       "CoPaint: DDIM with G gradient steps on x_t per step (paper defaults: 250 steps, G=2)",
       copaint_option_specs(base), factory, check});
  CoPaintParams tt = base;
  tt.time_travel = true;
  tt.jump_length = 10;
  tt.jump_n_sample = 2;
  registry.add({"copaint_tt", "CoPaint-TT: CoPaint with time travel (tau=10, K=2)",
                copaint_option_specs(tt), factory, check});
  CoPaintParams fast = base;
  fast.steps = 100;
  fast.G = 1;
  fast.lr_xt_decay = 1.03;
  registry.add({"copaint_fast",
                "CoPaint-Fast: 100 DDIM steps over the 250-step respacing, G=1, lr decay 1.03 "
                "(set lr_xt=0.025 for ImageNet)",
                copaint_option_specs(fast), factory, check});
}

}  // namespace copaint
