// diffusers' pixel-space UNet2DModel (the google/ddpm family), written functionally over a
// name->tensor table whose names are diffusers' state_dict keys, and the Denoiser that runs it
// with the process of its scheduler_config.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "framework/diffusion/model.h"
#include "framework/nn/diffusers_config.h"

namespace copaint {

/// A UNet2DModel (diffusers 0.27's unet_2d.py, unet_2d_blocks.py, resnet.py, attention_processor
/// .py: the same operations in the same order, so float32 outputs agree to rounding).
class DiffusersUNet {
 public:
  /// Allocates every parameter (zeros, float32, CPU) for `config` (validated by the parser).
  explicit DiffusersUNet(const DiffusersUNetConfig& config);

  const DiffusersUNetConfig& config() const { return config_; }
  /// Names and shapes in diffusers' state_dict order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> layout() const;
  int64_t parameter_count() const;
  /// Copies a state_dict in. diffusers' deprecated attention names (query, key, value,
  /// proj_attn: what the google/ddpm-* checkpoints store) are read as to_q, to_k, to_v,
  /// to_out.0. InputError naming every missing, unexpected and mis-shaped tensor.
  void load(const std::vector<std::pair<std::string, at::Tensor>>& state_dict);
  /// x [B, in_channels, H, W] (H, W divisible by 2^(levels-1)); t [B] or 0-d timesteps (any
  /// numeric dtype). Returns [B, out_channels, H, W] (the model's `.sample`).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t) const;
  void to(const c10::Device& device, at::ScalarType dtype = at::kFloat);
  void requires_grad_(bool requires_grad);

 private:
  struct Resnet {
    std::string prefix;
    int64_t in = 0, out = 0;
    double scale = 1;  ///< output_scale_factor
  };
  struct Attention {
    std::string prefix;
    int64_t channels = 0, heads = 1, head_dim = 0;
    bool norm = true;     ///< has group_norm
    int64_t groups = 32;  ///< its GroupNorm groups
    double rescale = 1;   ///< rescale_output_factor
  };
  struct Block {
    std::string prefix;  ///< "down_blocks.0", "mid_block", "up_blocks.1"
    std::vector<Resnet> resnets;
    std::vector<Attention> attentions;  ///< empty, or one per resnet (mid: one per resnet after
                                        ///< the first)
    bool resample = false;              ///< a down- or upsampler after the resnets
    int64_t channels = 0;               ///< the resampler's channels
  };

  Attention make_attention(const std::string& prefix, int64_t channels, int64_t groups, bool norm,
                           double rescale) const;
  Block make_down_block(int64_t level, int64_t in_channels) const;
  Block make_mid_block() const;
  Block make_up_block(int64_t index, int64_t prev_out_channels) const;
  /// Appends a block's tensors to layout_ in diffusers' state_dict order.
  void add_block_layout(const Block& b);
  const at::Tensor& p(const std::string& name) const;
  at::Tensor resnet(const Resnet& r, const at::Tensor& x, const at::Tensor& emb) const;
  at::Tensor attention(const Attention& a, const at::Tensor& x) const;
  at::Tensor time_embedding(const at::Tensor& t, int64_t batch, const at::Device& device) const;

  DiffusersUNetConfig config_;
  std::vector<Block> down_, up_;
  Block mid_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> layout_;
  std::unordered_map<std::string, at::Tensor> params_;
};

/// A diffusers folder as a Denoiser: the UNet, the training process of its scheduler config
/// (betas, variance_type), and the prediction converted to eps (v_prediction: eps = sqrt(ab) v +
/// sqrt(1 - ab) x_t; sample: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab), ab at the original
/// timestep). Parameters never require grad (methods differentiate to x only).
class DiffusersDenoiser : public Denoiser {
 public:
  DiffusersDenoiser(std::shared_ptr<DiffusersUNet> unet, DiffusersSchedulerConfig scheduler);
  /// Loads DIR (find_diffusers_folder): config.json, the weights (our safetensors or torch.save
  /// reader), scheduler_config.json (DDPMScheduler's defaults with a warning when absent).
  /// Errors are one-line InputErrors naming the file. With a preset, config.json may be absent
  /// (the preset's published one is used); when present it must describe the same network, and
  /// the preset's scheduler config stands in for an absent scheduler_config.json.
  static std::unique_ptr<DiffusersDenoiser> from_folder(const std::string& dir,
                                                        const DiffusersPreset* preset = nullptr);

  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override;
  int64_t image_size() const override { return unet_->config().sample_size; }
  int64_t channels() const override { return unet_->config().in_channels; }
  bool learn_sigma() const override {
    return unet_->config().out_channels == 2 * unet_->config().in_channels;
  }
  int64_t num_train_timesteps() const override { return scheduler_.num_train_timesteps; }
  DiffusionSchedule train_schedule() const override { return schedule_; }
  ModelVariance variance() const override { return scheduler_.variance(); }
  void to(const c10::Device& device) override;
  std::string describe() const override;
  const DiffusersUNet& unet() const { return *unet_; }
  const DiffusersSchedulerConfig& scheduler() const { return scheduler_; }

 private:
  std::shared_ptr<DiffusersUNet> unet_;
  DiffusersSchedulerConfig scheduler_;
  DiffusionSchedule schedule_;
  at::Tensor alphas_cumprod_;  ///< float64 [T] on the model's device (prediction conversion)
};

/// Loads the state dict of a diffusers weights file (safetensors or torch.save .bin), refusing
/// non-finite tensors, into a DiffusersUNet built from `config`. InputError naming the file.
std::shared_ptr<DiffusersUNet> load_diffusers_unet(const DiffusersUNetConfig& config,
                                                   const std::string& weights);

}  // namespace copaint
