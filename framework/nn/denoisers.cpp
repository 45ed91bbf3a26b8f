// UNetDenoiser and GaussianDenoiser.
#include "framework/nn/denoisers.h"

#include <ATen/ATen.h>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/diffusion/schedule.h"

namespace copaint {

std::string UNetRunOptions::to_string() const {
  const auto b = [](bool v) { return v ? "true" : "false"; };
  return std::string("precision=") + precision_name(precision) +
         ",channels_last=" + b(channels_last) + ",grad_checkpoint=" + b(grad_checkpoint) +
         ",cudnn_benchmark=" + b(cudnn_benchmark);
}

UNetDenoiser::UNetDenoiser(std::shared_ptr<UNet> unet, UNetRunOptions options)
    : unet_(std::move(unet)), options_(options) {
  unet_->set_checkpointing(options_.grad_checkpoint);
  if (options_.channels_last) unet_->set_channels_last(true);
}

std::unique_ptr<UNetDenoiser> UNetDenoiser::from_checkpoint(const UNetConfig& config,
                                                            const std::string& path,
                                                            UNetRunOptions options) {
  auto unet = std::make_shared<UNet>(config);
  const StateDict sd = load_finite_state_dict(path);
  try {
    unet->load(sd);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  unet->requires_grad_(false);
  return std::make_unique<UNetDenoiser>(std::move(unet), options);
}

void UNetDenoiser::to(const c10::Device& device) {
  Precision precision = options_.precision;
  if (precision == Precision::kFp16 && !device.is_cuda()) {
    if (!options_.fp16_falls_back_on_cpu) {
      throw UsageError("precision fp16 needs a CUDA device (LibTorch has no fp16 convolutions on " +
                       device.str() + "); use bf16 or fp32 there");
    }
    log_warn("use_fp16 ignored on " + device.str() + ": fp16 convolutions need CUDA");
    precision = Precision::kFp32;
    options_.precision = precision;  // describe() says what runs
  }
  at::ScalarType dtype = at::kFloat;
  if (precision == Precision::kFp16) dtype = at::kHalf;
  if (precision == Precision::kBf16) dtype = at::kBFloat16;
  unet_->to(device, dtype);
  set_cuda_math(device, precision, options_.cudnn_benchmark);
}

std::string UNetDenoiser::describe() const {
  return "adm unet " + unet_->config().to_string() + "; " + options_.to_string();
}

at::Tensor UNetDenoiser::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
  return unet_->forward(x, t, y);
}

GaussianDenoiser::GaussianDenoiser(at::Tensor mean, double std, int64_t num_train_timesteps)
    : mean_(std::move(mean)), std_(std), steps_(num_train_timesteps) {
  if (mean_.dim() != 3) throw InputError("GaussianDenoiser mean must be [C,H,W]");
  if (!(std > 0)) throw InputError("GaussianDenoiser std must be positive");
  alphas_cumprod_ =
      at::tensor(DiffusionSchedule::linear(num_train_timesteps).alphas_cumprod, at::kDouble);
}

void GaussianDenoiser::to(const c10::Device& device) {
  mean_ = mean_.to(device);
  alphas_cumprod_ = alphas_cumprod_.to(device);
}

at::Tensor GaussianDenoiser::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor&) {
  const at::Tensor ab = alphas_cumprod_.index({t.to(at::kLong).to(alphas_cumprod_.device())})
                            .to(x.scalar_type())
                            .view({-1, 1, 1, 1});
  const at::Tensor a = ab.sqrt(), b = (1 - ab).sqrt();
  return b * (x - a * mean_.unsqueeze(0)) / (ab * (std_ * std_) + (1 - ab));
}

}  // namespace copaint
