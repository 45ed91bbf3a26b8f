// The replacement baselines on DDIM: Blended (the reference's `ddim` algorithm: before each step
// the known region of x_t is replaced by the forward-noised reference image at t) and Resample
// (the reference's R_DDIMSampler, after Trippe et al.: the same over N particles per sample with
// residual importance resampling by how well each particle's step matches the noised known
// region, one particle kept at the end). Registered as blended and resample.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "framework/diffusion/schedule.h"
#include "methods/method.h"

namespace copaint {

/// Settings of blended (the reference's DDIMSampler; names in brackets).
struct BlendedParams {
  std::string respacing = "250";  ///< respacing of the model's process [timestep_respacing]
  int64_t steps = 0;              ///< DDIM steps over the respaced process, 0 = all of it
                                  ///< [ddim.schedule_params.num_inference_steps]
  ScheduleType schedule_type = ScheduleType::kLinear;  ///< DDIM step spacing: linear | quad
  double eta = 0.0;                                    ///< DDIM sigma scale [ddim.ddim_sigma]
  bool clip_denoised = true;                           ///< clamp x0 predictions to [-1, 1]
  /// Reference behaviour: one forward-noise draw per step for the whole batch, from generators[0]
  /// (the reference noises the batch's first image once; here each sample keeps its own image).
  /// Default: each sample's own draw, so a sample does not depend on its batch.
  bool share_forward_noise = false;

  /// From resolved registry options (keys as in blended_fields()).
  static BlendedParams from_options(const Options& options);
};

/// Every option of blended, declared once.
const std::vector<ParamField<BlendedParams>>& blended_fields();

/// Option keys, defaults and help of the `blended` entry (from blended_fields()).
std::vector<OptionSpec> blended_option_specs(const BlendedParams& defaults);

/// Blended diffusion on DDIM. Draws (DrawRequest role, step = loop index k, t): "x_T" (-1, -1;
/// unless input.x_T is given), "forward" (the step k that first visits t, t: the forward noise
/// of the known region at respaced step t, [B,C,H,W], one draw per visited t; [1,C,H,W] with
/// share_forward_noise) and "ddim" (k, t: the eta noise of the step from t; only for eta > 0).
/// Each sample noises its own reference image with its own generator (the reference noises the
/// batch's first image once for the whole batch: share_forward_noise). As the reference, the last
/// step (1 -> 0) is taken and nothing is pasted after it.
class Blended : public Method {
 public:
  explicit Blended(BlendedParams params) : params_(std::move(params)) {}
  const BlendedParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;

 private:
  BlendedParams params_;
};

/// Settings of resample (the reference's R_DDIMSampler).
struct ResampleParams {
  BlendedParams ddim;        ///< the underlying replacement DDIM sampler
  int64_t particles = 10;    ///< particles per output sample [n_samples]
  double temperature = 100;  ///< weights softmax(temperature / (mse / mean mse))
  /// Reference behaviour: the resampled particles are the pre-step states x_t (the DDIM step's
  /// result is dropped, so the unknown region never leaves x_T). Default: resample the stepped
  /// particles x_{t-1}, which is the sequential Monte Carlo the method describes.
  bool resample_pre_step = false;
  /// Reference behaviour at the last step (prev_t = 0): the reference's x_forward[0] holds one
  /// noised image per particle and its distance broadcasts, so each particle is weighed against
  /// all N of them (an extra "forward" draw [B*N,...] at t = 0). Default: against the sample's
  /// one noised image, as at every other step.
  bool reference_last_weights = false;

  static ResampleParams from_options(const Options& options);
};

/// Every option of resample (blended's, on `ddim`, then its own), declared once.
const std::vector<ParamField<ResampleParams>>& resample_fields();

std::vector<OptionSpec> resample_option_specs(const ResampleParams& defaults);

/// Replacement DDIM over `particles` particles per sample. After each step the particles of a
/// sample are weighted by p = softmax(temperature / (mse / mean mse)), mse the squared distance
/// of their step's known region to the forward-noised reference at the previous step, and
/// resampled by residual resampling; at the end one particle per sample is drawn by its fit to
/// the clean known region (the reference keeps 2 of its 10 for the whole batch; here every output
/// sample has its own particles, so a sample does not depend on its batch). Each particle
/// evaluation counts as one forward. Draws (role, step, t): "x_T" (-1, first step; [B*N,...]),
/// "forward" (as blended; [B,...]; with reference_last_weights also [B*N,...] at t = 0), "ddim"
/// ([B*N,...], eta > 0 only), multinomial "resample" (k, prev_t; sample b's remainder draw of
/// residual_resample) and "resample_final" (total steps, -1); all from generators[b] for the
/// rows of sample b. The reference's settings: resample_pre_step, reference_last_weights,
/// share_forward_noise, particles = its n_samples, one sample per batch (it keeps
/// keep_n_samples of one set of particles; the first of them is this sample).
class Resample : public Method {
 public:
  explicit Resample(ResampleParams params) : params_(std::move(params)) {}
  const ResampleParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards(int64_t train_steps) const override;
  bool draws_own_initial_noise() const override { return true; }  ///< particles x its batch

 private:
  ResampleParams params_;
};

/// The reference's residual resampling of n indices from unnormalised weights w (size m): each
/// index i is copied floor(n w_i / sum w) times, the remaining R draws are sampled without
/// replacement in proportion to the fractional parts (with replacement if fewer than R are
/// non-zero). NaN / infinite weights or a sum below 1e-6 fall back to uniform weights.
/// The remainder draw is a multinomial DrawRequest (weights, k, replacement filled in here)
/// offered to `source` first.
std::vector<int64_t> residual_resample(const std::vector<double>& weights, int64_t n,
                                       at::Generator& generator,
                                       const NoiseSource* source = nullptr,
                                       DrawRequest request = DrawRequest());

/// Registers blended and resample.
void register_replacement_methods(Registry<Method>& registry);

}  // namespace copaint
