// The model interface methods see: a denoiser mapping (x_t, original timestep, optional label)
// to eps (and the variance channels when the network learns sigma), plus evaluation counters.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "framework/diffusion/schedule.h"

namespace copaint {

/// The reverse-step variance a network was trained with (what a DDPM step uses by default).
enum class ModelVariance {
  kLearnedRange,  ///< variance channels interpolate log beta and the log posterior variance
  kFixedSmall,    ///< the posterior variance (DDPM's sigma^2 = beta~; diffusers' fixed_small)
  kFixedLarge,    ///< beta_t (DDPM's sigma^2 = beta; diffusers' fixed_large)
};

/// A diffusion network. Methods never see the concrete class (UNet, analytic test models, ...).
class Denoiser {
 public:
  static constexpr const char* kRegistryKind = "model";
  virtual ~Denoiser() = default;

  /// Raw network output for x [B,C,H,W] at timesteps t [B] (int64) of the *original* process
  /// (respaced indices are mapped by the caller), y [B] class labels or undefined.
  /// Returns [B, C, H, W], or [B, 2C, H, W] when learn_sigma() (first C channels are eps).
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) = 0;

  virtual int64_t image_size() const = 0;
  virtual int64_t channels() const = 0;
  virtual bool learn_sigma() const { return false; }
  /// Number of classes for a class-conditional model, 0 otherwise.
  virtual int64_t num_classes() const { return 0; }
  /// Number of steps of the process the network was trained on.
  virtual int64_t num_train_timesteps() const { return 1000; }
  /// The process the network was trained on (unrespaced): guided-diffusion's linear betas unless
  /// the model says otherwise (a diffusers folder's scheduler_config.json).
  virtual DiffusionSchedule train_schedule() const {
    return DiffusionSchedule::linear(num_train_timesteps());
  }
  /// The variance the network was trained with: learned for variance-channel networks, else the
  /// posterior variance unless the model says otherwise.
  virtual ModelVariance variance() const {
    return learn_sigma() ? ModelVariance::kLearnedRange : ModelVariance::kFixedSmall;
  }
  /// Whether the network computes in reduced precision (an fp16 or bf16 torso): the
  /// gradient-based methods then guard their gradients (methods/gradients.h).
  virtual bool reduced_precision() const { return false; }
  virtual void to(const c10::Device& device) = 0;
  virtual std::string describe() const = 0;
};

/// UNet evaluations spent on a piece of work (per batch call).
struct EvalCounter {
  int64_t forwards = 0;   ///< network forward passes (each over a whole batch)
  int64_t backwards = 0;  ///< backward passes through the network to its input
  /// int64 [B] on the run's device: per sample, the gradient steps whose loss or gradient was
  /// non-finite (methods/gradients.h); undefined for methods without gradients.
  at::Tensor nonfinite_grads;
};

}  // namespace copaint
