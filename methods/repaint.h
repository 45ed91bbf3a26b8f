// RePaint (Lugmayr et al. 2022) as the reference runs it: DDPM posterior steps on the respaced
// process with the known region replaced by the forward-noised reference before every step but
// the first, and the jump (resampling) schedule of guided_diffusion/scheduler.py. Registered as
// repaint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "framework/diffusion/ddpm.h"
#include "methods/method.h"

namespace copaint {

/// Settings of repaint (names in brackets: the reference's repaint.* config).
struct RePaintParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t t_T = 0;           ///< schedule length, 0 = the respaced size [schedule_jump_params.t_T]
  int64_t n_sample = 1;      ///< [schedule_jump_params.n_sample]
  int64_t jump_length = 10;  ///< steps travelled back per jump [jump_length]
  int64_t jump_n_sample = 10;                   ///< visits of each jump point [jump_n_sample]
  VarianceType variance = VarianceType::kAuto;  ///< auto | learned_range | fixed_small | ...
  bool clip_denoised = true;                    ///< clamp x0 predictions to [-1, 1]

  static RePaintParams from_options(const Options& options);
};

/// Every option of repaint, declared once.
const std::vector<ParamField<RePaintParams>>& repaint_fields();

std::vector<OptionSpec> repaint_option_specs(const RePaintParams& defaults);

/// RePaint. Walks repaint_schedule_jump(t_T, n_sample, jump_length, jump_n_sample): a downward
/// pair (t, t-1) is one DDPM step at t (x_{t-1} = mean + exp(log var / 2) noise, no noise at
/// t = 0), preceded (except on the very first step, as in the reference) by replacing the known
/// region with sqrt(ab_t) image + sqrt(1 - ab_t) noise; an upward pair (t, t+1) re-noises one
/// step with betas[t+1]. Draws (role, step = index k of the pair walked, t): "x_T" (-1, -1),
/// "step" (k, t: the DDPM noise, drawn also at t = 0 where it is multiplied by 0, as the
/// reference), "inject" (k, t: the known region's forward noise), "undo" (k, the step travelled
/// to). Matches the reference's draws one for one (it draws "step" before "inject").
class RePaint : public Method {
 public:
  explicit RePaint(RePaintParams params) : params_(std::move(params)) {}
  const RePaintParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;
  /// The schedule walked for a respaced process of `respaced_size` steps.
  std::vector<int64_t> times(int64_t respaced_size) const;

 private:
  RePaintParams params_;
};

/// Registers repaint.
void register_repaint_method(Registry<Method>& registry);

}  // namespace copaint
