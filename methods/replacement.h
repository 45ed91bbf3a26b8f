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

#include "framework/options.h"
#include "framework/registry.h"
#include "methods/method.h"

namespace copaint {

/// Settings of blended (the reference's DDIMSampler; names in brackets).
struct BlendedParams {
  std::string respacing = "250";         ///< respacing of the model's process [timestep_respacing]
  int64_t steps = 0;                     ///< DDIM steps over the respaced process, 0 = all of it
                                         ///< [ddim.schedule_params.num_inference_steps]
  std::string schedule_type = "linear";  ///< DDIM step spacing: linear | quad
  double eta = 0.0;                      ///< DDIM sigma scale [ddim.ddim_sigma]
  bool clip_denoised = true;             ///< clamp x0 predictions to [-1, 1]

  /// From resolved registry options (keys as in blended_option_specs()).
  static BlendedParams from_options(const Options& options);
};

/// Option keys, defaults and help of the `blended` entry.
std::vector<OptionSpec> blended_option_specs(const BlendedParams& defaults);

/// Blended diffusion on DDIM. Noise purposes (InpaintInput::noise): "forward" (the reference's
/// forward noise at respaced step t, [B,C,H,W], one draw per visited t) and "ddim" (the eta noise
/// of the step from t). Each sample noises its own reference image with its own generator (the
/// reference noises the batch's first image once for the whole batch).
class Blended : public Method {
 public:
  explicit Blended(BlendedParams params) : params_(std::move(params)) {}
  const BlendedParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards() const override;

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

  static ResampleParams from_options(const Options& options);
};

std::vector<OptionSpec> resample_option_specs(const ResampleParams& defaults);

/// Replacement DDIM over `particles` particles per sample. After each step the particles of a
/// sample are weighted by p = softmax(temperature / (mse / mean mse)), mse the squared distance
/// of their step's known region to the forward-noised reference at the previous step, and
/// resampled by residual resampling; at the end one particle per sample is drawn by its fit to
/// the clean known region (the reference keeps 2 of its 10 for the whole batch; here every output
/// sample has its own particles, so a sample does not depend on its batch). Each particle
/// evaluation counts as one forward. Noise purposes: "x_T" ([B*N,...], t = first step), "forward"
/// ([B,...]), "ddim" ([B*N,...]); particle draws otherwise come from generators[b] for sample b.
class Resample : public Method {
 public:
  explicit Resample(ResampleParams params) : params_(std::move(params)) {}
  const ResampleParams& params() const { return params_; }
  InpaintOutput run(Denoiser& model, const InpaintInput& input) override;
  int64_t expected_forwards() const override;

 private:
  ResampleParams params_;
};

/// The reference's residual resampling of n indices from unnormalised weights w (size m): each
/// index i is copied floor(n w_i / sum w) times, the remaining R draws are sampled without
/// replacement in proportion to the fractional parts (with replacement if fewer than R are
/// non-zero). NaN / infinite weights or a sum below 1e-6 fall back to uniform weights.
std::vector<int64_t> residual_resample(const std::vector<double>& weights, int64_t n,
                                       at::Generator& generator);

/// Registers blended and resample.
void register_replacement_methods(Registry<Method>& registry);

}  // namespace copaint
