// DPS (Chung et al. 2023) as the reference runs it: a DDIM (eta = 1: DDPM-like) step from the
// clamped x0 prediction, then a gradient step on x_{t-1} along -grad_{x_t} ||y - A x0_hat(x_t)||
// through the network. Inpainting and super-resolution. Registered as dps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "methods/degradation.h"
#include "methods/method.h"

namespace copaint {

/// Settings of dps (names in brackets: the reference's dps.* config).
struct DPSParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t t_T = 0;                ///< steps, 0 = the respaced size [dps.schedule_jump_params.t_T]
  double step_size = 1.0;         ///< gradient scale [dps.step_size] (CelebA-HQ 1.0, ImageNet 0.5)
  double eta = 1.0;               ///< DDIM sigma scale [dps.eta]
  double measurement_sigma = 1e-4;  ///< noise added to the measurement y (the reference's noiser)
  bool batch_norm = false;          ///< reference behaviour: one norm over the whole batch
                                    ///< (couples the samples); default: one norm per sample
  Measurement mode = Measurement::kInpaint;  ///< inpaint | super_resolution [mode]
  int64_t scale = 0;                         ///< super-resolution factor [scale]
  bool clip_denoised = true;                 ///< clamp x0 predictions to [-1, 1]

  static DPSParams from_options(const Options& options);
};

/// Every option of dps, declared once.
const std::vector<ParamField<DPSParams>>& dps_fields();

std::vector<OptionSpec> dps_option_specs(const DPSParams& defaults);

/// DPS. For t = t_T - 1 .. 1: x0 = clamp(x0_from_eps(x_t)), eps' = eps_from_x0(x_t, x0),
/// x' = ddim_step(x0, eps', t -> t - 1, eta, z), then x_{t-1} = x' - step_size grad_{x_t} norm,
/// norm = ||y - A x0|| per sample (or over the batch with batch_norm), y = A(image) +
/// measurement_sigma n drawn once. One forward and one backward per step. The sample is x_0,
/// clamped. Draws (role, step, t): "x_T" (-1, -1), "measurement" (-1, t_T; shaped like A(image)),
/// "step" (k, t). The reference also draws a q_sample of the measurement per step that its 'ps'
/// method never uses; that draw is not made here.
/// The measurement is only approached by gradient steps, so short processes leave a known-region
/// error (tiny Fashion-MNIST UNet, half mask: known MSE ~0.06 at respacing 25, ~2e-4 at 100/250).
class DPS : public Method {
 public:
  explicit DPS(DPSParams params) : params_(std::move(params)) {}
  const DPSParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;

 private:
  DPSParams params_;
};

void register_dps_method(Registry<Method>& registry);

}  // namespace copaint
