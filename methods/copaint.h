// CoPaint (ICML 2023): DDIM sampling where, before each denoising step, x_t is optimised by G
// gradient steps so that the one-step (or multi-hop) x0 prediction matches the known region.
// CoPaint-TT adds time travel; CoPaint-Fast is a preset. Registered as copaint, copaint_tt,
// copaint_fast.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "framework/diffusion/schedule.h"
#include "methods/degradation.h"
#include "methods/method.h"

namespace copaint {

/// Every hyperparameter of the reference's O_DDIMSampler (names in brackets).
struct CoPaintParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t steps = 0;              ///< DDIM steps over the respaced process, 0 = all of it
                                  ///< [ddim.schedule_params.num_inference_steps]
  ScheduleType schedule_type = ScheduleType::kLinear;  ///< DDIM step spacing: linear | quad
  int64_t G = 2;                    ///< gradient steps on x_t per step [num_iteration_optimize_xt]
  double lr_xt = 0.02;              ///< learning rate of the x_t updates [lr_xt]
  double lr_xt_decay = 1.012;       ///< lr multiplied by this after every step [lr_xt_decay]
  double coef_xt_reg = 1e-4;        ///< weight of ||x_t - x_t_start||^2 [coef_xt_reg]
  double coef_xt_reg_decay = 1.01;  ///< coef multiplied by this after every step
  bool smart_lr = true;     ///< divide lr by prod sqrt(1/ab_cur) sqrt(ab_prev) over the hops to 0
                            ///< [use_smart_lr_xt_decay]
  bool adaptive_lr = true;  ///< backtrack lr *= 0.8 until the loss does not grow
                            ///< [use_adaptive_lr_xt]
  int64_t mid_interval_num = 1;  ///< hops of the x0 prediction (>1: CoPaint-Fast's multi-hop)
  double eta = 0.0;              ///< DDIM sigma scale [ddim.ddim_sigma]
  bool time_travel = false;      ///< CoPaint-TT [use_timetravel]
  int64_t jump_length = 10;      ///< tau: steps travelled back [jump_length]
  int64_t jump_n_sample = 2;     ///< K: visits of each jump point [jump_n_sample]
  std::string time_travel_filter = "none";   ///< [time_travel_filter_type]
  bool optimize_before_time_travel = true;   ///< optimise x_t before travelling back
  Measurement mode = Measurement::kInpaint;  ///< super_resolution: loss on average-pooled images
  int64_t scale = 0;                         ///< super-resolution factor (mode = super_resolution)
  bool batch_coupled = false;    ///< reference behaviour: one loss summed over the batch decides
                                 ///< backtracking for all samples together (default: per sample)
  int64_t max_backtracks = 100;  ///< safety cap on backtracking rounds per gradient step
  bool clip_denoised = true;     ///< clamp x0 predictions to [-1, 1]

  /// From resolved registry options (keys as in copaint_fields()).
  static CoPaintParams from_options(const Options& options);
};

/// Every option of the copaint entries: key, member, help and range, declared once.
const std::vector<ParamField<CoPaintParams>>& copaint_fields();

/// Option keys, defaults and help of the `copaint` registry entry (from copaint_fields()).
std::vector<OptionSpec> copaint_option_specs(const CoPaintParams& defaults);

/// What one call of the per-step function produced (the reference's p_sample).
struct CoPaintStepResult {
  at::Tensor x_opt;        ///< x_t after the G gradient steps
  at::Tensor pred_x0;      ///< x0 prediction at x_opt (multi-hop when mid_interval_num > 1)
  at::Tensor x_prev;       ///< the DDIM step from x_opt to prev_t
  at::Tensor loss;         ///< [B] masked fit term at x_opt (without the regulariser)
  int64_t backtracks = 0;  ///< learning-rate backtracking rounds (one forward each)
};

/// The known data a step needs.
struct CoPaintTarget {
  at::Tensor x0;    ///< [B or 1,C,H,W] reference image in [-1,1]
  at::Tensor mask;  ///< [B or 1,1,H,W], 1 = known
  at::Tensor y;     ///< class labels or undefined
  const std::vector<at::Generator>* generators = nullptr;  ///< for eta > 0 noise
  const NoiseSource* noise = nullptr;  ///< replay source of the eta > 0 noise (may be null)
  int64_t step = -1;                   ///< outer loop index, for the draws' DrawRequest::step
};

/// Draws (role, step = index k of the pair walked, t): "x_T" (-1, -1), "undo" (k, the step
/// travelled to), and for eta > 0 per call "ddim_hop" (k, the hop's start) for each hop of a
/// multi-hop x0 prediction, then "ddim" (k, t) for the update.
class CoPaint : public Method {
 public:
  explicit CoPaint(CoPaintParams params) : params_(std::move(params)) {}
  const CoPaintParams& params() const { return params_; }

  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;

  /// One call of the reference's p_sample: optimise x at respaced step t with learning rate
  /// `lr_xt` (before the smart division) and regulariser weight `coef_xt_reg`, then take the DDIM
  /// step to prev_t. `schedule` is the respaced process.
  CoPaintStepResult step(Denoiser& model, const DiffusionSchedule& schedule,
                         const CoPaintTarget& target, const at::Tensor& x, int64_t t,
                         int64_t prev_t, double lr_xt, double coef_xt_reg,
                         EvalCounter& counter) const;

  /// The respaced timestep list the sampler walks (see schedule.h).
  std::vector<int64_t> timesteps(int64_t respaced_size) const;

  /// When set, run() appends the result of every call of step(), in order (denoising steps and
  /// the optimisations before time travel, as the reference's p_sample calls).
  std::vector<CoPaintStepResult>* trace = nullptr;

 private:
  CoPaintParams params_;
};

/// Registers copaint, copaint_tt and copaint_fast.
void register_copaint_methods(Registry<Method>& registry);

}  // namespace copaint
