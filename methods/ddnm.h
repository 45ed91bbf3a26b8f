// DDNM (Wang et al. 2023) as the reference runs it: at every step the clamped x0 prediction is
// corrected in the range of A, x0 <- x0 - lambda Ap(A x0 - y), then the DDIM-like update with eta
// and the sigma_y noise rule. Inpainting (A = mask) and super-resolution (A = average pooling).
// Registered as ddnm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "methods/degradation.h"
#include "methods/method.h"

namespace copaint {

/// Settings of ddnm (names in brackets: the reference's ddnm.* config).
struct DDNMParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t t_T = 0;            ///< schedule length, 0 = the respaced size [schedule_jump_params.t_T]
  int64_t n_sample = 1;       ///< [schedule_jump_params.n_sample]
  int64_t jump_length = 1;    ///< time travel: steps back per jump (1 = none) [jump_length]
  int64_t jump_n_sample = 1;  ///< time travel: visits of each jump point [jump_n_sample]
  double eta = 0.85;          ///< share of fresh noise in the update [ddnm.eta]
  double sigma_y = 0.0;       ///< measurement noise level [ddnm.sigma_y]
  Measurement mode = Measurement::kInpaint;  ///< inpaint | super_resolution [mode]
  int64_t scale = 0;                         ///< super-resolution factor [scale]
  bool clip_denoised = true;                 ///< clamp x0 predictions to [-1, 1]
  /// The DDNM paper's noise-free update x_{t-1} = sqrt(ab_{t-1}) x0 + sqrt(1 - ab_{t-1})
  /// (eta z + sqrt(1 - eta^2) eps) (needs sigma_y = 0). Default: the reference's update, whose
  /// factor gamma_t = sqrt(1 - ab_t^2) shrinks the late steps' noise (under-dispersed samples).
  bool paper_update = false;

  static DDNMParams from_options(const Options& options);
};

/// Every option of ddnm, declared once.
const std::vector<ParamField<DDNMParams>>& ddnm_fields();

std::vector<OptionSpec> ddnm_option_specs(const DDNMParams& defaults);

/// DDNM's range-space correction x0 - lambda Ap(A x0 - y). With lambda = 1, A(result) = y
/// (A Ap = I).
at::Tensor ddnm_correct(const Degradation& degradation, const at::Tensor& x0, const at::Tensor& y,
                        const at::Tensor& lambda);

/// DDNM. Walks the pairs of repaint_schedule_jump(t_T, ...) without the final (0, -1) pair, as
/// the reference does: a downward pair (t, t-1) is the DDNM step at t with ab_{t-1}
/// (sigma_t = sqrt(1 - ab_t^2), and for sigma_t >= ab_{t-1} sigma_y: lambda = 1,
/// gamma = sqrt(sigma_t^2 - (ab_{t-1} sigma_y)^2); else lambda = sigma_t / (ab_{t-1} sigma_y),
/// gamma = 0; x_{t-1} = sqrt(ab_{t-1}) x0 + gamma (sqrt(1-ab_{t-1}) eta z
/// + sqrt(1-ab_{t-1}) sqrt(1-eta^2) eps)); an upward pair re-noises one step. The sample is x at
/// step 0, clamped. y = A(image) without added noise (sigma_y only changes lambda and gamma).
/// paper_update drops gamma (lambda = 1).
/// Draws (role, step = index k of the pair walked, t): "x_T" (-1, -1), "step" (k, t), "undo" (k,
/// the step travelled to), as the reference's. The reference's hard-coded eta 0.85 and sigma_y 0
/// are the defaults of eta and sigma_y.
class DDNM : public Method {
 public:
  explicit DDNM(DDNMParams params) : params_(std::move(params)) {}
  const DDNMParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;
  std::vector<int64_t> times(int64_t respaced_size) const;

 private:
  DDNMParams params_;
};

void register_ddnm_method(Registry<Method>& registry);

}  // namespace copaint
