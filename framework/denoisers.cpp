// UNetDenoiser and GaussianDenoiser.
#include "framework/denoisers.h"

#include <ATen/ATen.h>

#include "framework/checkpoint.h"
#include "framework/error.h"
#include "framework/schedule.h"

namespace copaint {

std::unique_ptr<UNetDenoiser> UNetDenoiser::from_checkpoint(const UNetConfig& config,
                                                            const std::string& path) {
  auto unet = std::make_shared<UNet>(config);
  const StateDict sd = load_state_dict(path);
  try {
    unet->load(sd);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  unet->requires_grad_(false);
  return std::make_unique<UNetDenoiser>(std::move(unet));
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
  const at::Tensor ab =
      alphas_cumprod_.index({t.to(at::kLong).to(alphas_cumprod_.device())}).to(x.scalar_type()).view({-1, 1, 1, 1});
  const at::Tensor a = ab.sqrt(), b = (1 - ab).sqrt();
  return b * (x - a * mean_.unsqueeze(0)) / (ab * (std_ * std_) + (1 - ab));
}

}  // namespace copaint
