// DDRM (Kawar et al. 2022) as the reference runs it for inpainting and super-resolution: the
// variational update in the SVD basis of A, written here with the projection P = Ap A onto the
// measured subspace (A has one singular value s, so the SVD reduces to P and I - P).
// Registered as ddrm.
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

/// Settings of ddrm. The reference hard-codes etaB = 1, etaA = etaC = 0 and sigma_0 = 0 (its
/// comment: "not sure what to set"); the DDRM paper's defaults are eta = 0.85, eta_b = 1.
/// With eta = 0 the unknown pixels follow the deterministic DDIM ODE with unclamped x0, which
/// diverges on a weak network (the quickstart's tiny Fashion-MNIST UNet: colour noise in the
/// hole, as the reference would give); use eta = 0.85 there.
struct DDRMParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t t_T = 0;                ///< steps, 0 = the respaced size [ddrm.schedule_jump_params.t_T]
  double eta = 0.0;               ///< etaA = etaC: noise share off the measured subspace
  double eta_b = 1.0;             ///< etaB: weight of the measurement where it is less noisy
  double sigma_0 = 0.0;           ///< measurement noise (added to y with the sample's generator)
  Measurement mode = Measurement::kInpaint;  ///< inpaint | super_resolution [mode]
  int64_t scale = 0;                         ///< super-resolution factor [scale]

  static DDRMParams from_options(const Options& options);
};

/// Every option of ddrm, declared once.
const std::vector<ParamField<DDRMParams>>& ddrm_fields();

std::vector<OptionSpec> ddrm_option_specs(const DDRMParams& defaults);

/// DDRM. With x_mod = x_t / sqrt(ab_t) and sigma_t = sqrt(1 - ab_t) / sqrt(ab_t), it starts from
/// x = (Ap(y) + sqrt(L^2 - (sigma_0/s)^2) P z + L (I - P) z) / L at L = sigma_{t_T - 1} (the
/// reference's initialisation; the measured term only where s L > sigma_0) and steps
/// t -> t - 1 for t = t_T - 1 .. 1 with x0 = (x_t - sqrt(1-ab_t) eps) / sqrt(ab_t) (unclamped):
/// off the measured subspace x_mod' = x0 + sqrt(sn^2 - (eta sn)^2) eps + eta sn z; on it, when
/// s sn > sigma_0, x_mod' = eta_b Ap(y) + (1 - eta_b) P x0 + sqrt(sn^2 - sigma_0^2 eta_b^2 / s^2) P
/// z, when s sn < sigma_0, x_mod' = P x0 + sqrt(sn^2 - (eta sn)^2) s (Ap(y) - P x0) / sigma_0 + eta
/// sn P z (sn = sigma_{t-1}); then x_{t-1} = sqrt(ab_{t-1}) x_mod'. The sample is x_0, clamped.
/// Draws (role, step, t): "measurement" (-1, t_T; shaped like y, only for sigma_0 > 0), "x_T"
/// (-1, -1), "step" (k, t: one image-shaped draw per step, for both the measured (the reference's
/// noise_B) and the free part (its noise_C)). The reference works on vectors in its own order
/// (kept pixels first): its draws map onto these by that permutation, and its initialisation adds
/// x_T in NCHW order to that vector, i.e. uses a permuted x_T (equal in law).
class DDRM : public Method {
 public:
  explicit DDRM(DDRMParams params) : params_(std::move(params)) {}
  const DDRMParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;

 private:
  DDRMParams params_;
};

void register_ddrm_method(Registry<Method>& registry);

}  // namespace copaint
