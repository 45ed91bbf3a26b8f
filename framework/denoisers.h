// Concrete Denoisers: a UNet behind the model interface, and an analytic Gaussian-data model whose
// eps prediction is exact (the test double for method tests).
#pragma once

#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "framework/model.h"
#include "framework/unet.h"

namespace copaint {

/// An ADM UNet as a Denoiser. Parameters never require grad (methods differentiate to x only).
class UNetDenoiser : public Denoiser {
 public:
  explicit UNetDenoiser(std::shared_ptr<UNet> unet) : unet_(std::move(unet)) {}
  /// Builds the architecture and loads the checkpoint with the project's own reader; errors name
  /// the file and the mismatching tensors.
  static std::unique_ptr<UNetDenoiser> from_checkpoint(const UNetConfig& config,
                                                       const std::string& path);

  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  int64_t image_size() const override { return unet_->config().image_size; }
  int64_t channels() const override { return unet_->config().in_channels; }
  bool learn_sigma() const override { return unet_->config().learn_sigma; }
  int64_t num_classes() const override {
    return unet_->config().class_cond ? unet_->config().num_classes : 0;
  }
  void to(const c10::Device& device) override { unet_->to(device); }
  std::string describe() const override { return "adm unet " + unet_->config().to_string(); }
  UNet& unet() { return *unet_; }

 private:
  std::shared_ptr<UNet> unet_;
};

/// Data x0 ~ N(mean, std^2 I) per pixel, so E[eps | x_t] is known in closed form:
/// eps(x_t) = sqrt(1-ab) (x_t - sqrt(ab) mean) / (ab std^2 + 1 - ab), ab of the linear
/// 1000-step schedule at the original timestep t. Differentiable in x.
class GaussianDenoiser : public Denoiser {
 public:
  /// mean: [C,H,W] in [-1,1].
  GaussianDenoiser(at::Tensor mean, double std, int64_t num_train_timesteps = 1000);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  int64_t image_size() const override { return mean_.size(-1); }
  int64_t channels() const override { return mean_.size(0); }
  int64_t num_train_timesteps() const override { return steps_; }
  void to(const c10::Device& device) override;
  std::string describe() const override { return "analytic gaussian"; }
  /// The data distribution's sample: mean + std * noise.
  const at::Tensor& mean() const { return mean_; }
  double std() const { return std_; }

 private:
  at::Tensor mean_;
  double std_;
  int64_t steps_;
  at::Tensor alphas_cumprod_;  ///< float64 [steps]
};

}  // namespace copaint
