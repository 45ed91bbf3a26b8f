// Concrete Denoisers: a UNet behind the model interface, and an analytic Gaussian-data model whose
// eps prediction is exact (the test double for method tests).
#pragma once

#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "framework/core/device.h"
#include "framework/diffusion/model.h"
#include "framework/nn/unet.h"

namespace copaint {

/// How a UNetDenoiser runs its network: speed and memory settings that leave the math unchanged
/// up to rounding (precision changes the rounding a lot: see Precision).
struct UNetRunOptions {
  Precision precision = Precision::kFp32;  ///< fp32 | tf32 | bf16 | fp16 (framework/core/device.h)
  /// kFp16 on the CPU: warn and run fp32 instead of failing (guided-diffusion's use_fp16 flag,
  /// which names the training recipe rather than a request of the user).
  bool fp16_falls_back_on_cpu = false;
  bool channels_last = false;    ///< NHWC weights and activations (UNet::set_channels_last)
  bool grad_checkpoint = false;  ///< recompute UNet blocks in backward (UNet::set_checkpointing)
  bool cudnn_benchmark = false;  ///< cuDNN autotuning on CUDA (set_cuda_math)

  /// "precision=fp32,channels_last=false,..." (every field, for logs).
  std::string to_string() const;
};

/// An ADM UNet as a Denoiser. Parameters never require grad (methods differentiate to x only).
class UNetDenoiser : public Denoiser {
 public:
  explicit UNetDenoiser(std::shared_ptr<UNet> unet, UNetRunOptions options = {});
  /// Builds the architecture and loads the checkpoint with the project's own reader; errors name
  /// the file and the mismatching tensors.
  static std::unique_ptr<UNetDenoiser> from_checkpoint(const UNetConfig& config,
                                                       const std::string& path,
                                                       UNetRunOptions options = {});

  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  int64_t image_size() const override { return unet_->config().image_size; }
  int64_t channels() const override { return unet_->config().in_channels; }
  bool learn_sigma() const override { return unet_->config().learn_sigma; }
  int64_t num_classes() const override {
    return unet_->config().class_cond ? unet_->config().num_classes : 0;
  }
  /// Whether the torso runs in fp16 or bf16 (after to()).
  bool reduced_precision() const override { return unet_->torso_dtype() != at::kFloat; }
  /// Moves the UNet and applies the run options: the torso dtype of the precision (UsageError
  /// for fp16 on the CPU unless fp16_falls_back_on_cpu), the CUDA math switches, the layout.
  void to(const c10::Device& device) override;
  std::string describe() const override;
  UNet& unet() { return *unet_; }
  const UNetRunOptions& run_options() const { return options_; }

 private:
  std::shared_ptr<UNet> unet_;
  UNetRunOptions options_;
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
