// diffusers' folder format read into typed configs: a UNet2DModel's config.json and a
// scheduler_config.json (DDPMScheduler / DDIMScheduler keys), with the folder layouts found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "framework/diffusion/model.h"
#include "framework/diffusion/schedule.h"

namespace copaint {

/// UNet2DModel's config.json (diffusers 0.27 names and defaults; unet_2d.py). Only the pixel-space
/// model with positional time embedding, conv up/down sampling and SiLU is supported.
struct DiffusersUNetConfig {
  int64_t sample_size = 0;  ///< null in diffusers' default: 0 here (any size)
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  bool center_input_sample = false;  ///< x -> 2x - 1 before conv_in
  std::string time_embedding_type = "positional";
  double freq_shift = 0;        ///< exponent divisor half_dim - freq_shift
  bool flip_sin_to_cos = true;  ///< embedding [cos, sin] instead of [sin, cos]
  std::vector<std::string> down_block_types = {"DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                               "AttnDownBlock2D"};
  std::vector<std::string> up_block_types = {"AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                                             "UpBlock2D"};
  std::vector<int64_t> block_out_channels = {224, 448, 672, 896};
  int64_t layers_per_block = 2;
  double mid_block_scale_factor = 1;  ///< mid-block outputs divided by it
  int64_t downsample_padding = 1;     ///< 0: pad right/bottom by one, then a stride-2 conv
  std::string downsample_type = "conv";
  std::string upsample_type = "conv";
  double dropout = 0;                               ///< recorded only (inference)
  std::string act_fn = "silu";                      ///< silu (swish) only
  int64_t attention_head_dim = 8;                   ///< -1 = null: one head over all channels
  int64_t norm_num_groups = 32;                     ///< GroupNorm groups of every block
  int64_t attn_norm_num_groups = -1;                ///< -1 = null (mid attention: norm_num_groups)
  double norm_eps = 1e-5;                           ///< every GroupNorm's eps
  std::string resnet_time_scale_shift = "default";  ///< default | scale_shift
  bool add_attention = true;                        ///< attention in the mid block

  int64_t time_embed_dim() const { return block_out_channels.at(0) * 4; }
  /// "key=value,..." of the architecture (for describe() and logs).
  std::string to_string() const;
};

/// A scheduler_config.json (DDPMScheduler / DDIMScheduler; diffusers 0.27 names and defaults).
struct DiffusersSchedulerConfig {
  std::string class_name = "DDPMScheduler";
  int64_t num_train_timesteps = 1000;
  std::string beta_schedule = "linear";  ///< linear | scaled_linear | squaredcos_cap_v2
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::vector<double> trained_betas;          ///< when given, replaces beta_schedule
  std::string prediction_type = "epsilon";    ///< epsilon | v_prediction | sample
  std::string variance_type = "fixed_small";  ///< fixed_small(_log) | fixed_large(_log)
  bool clip_sample = true;                    ///< clamp x0 to +-clip_sample_range
  double clip_sample_range = 1.0;
  bool set_alpha_to_one = true;  ///< DDIM: the final alpha_bar is 1 (else alphas_cumprod[0])
  int64_t steps_offset = 0;      ///< added to "leading" timesteps
  std::string timestep_spacing = "leading";  ///< leading | trailing | linspace

  /// The training process: betas of beta_schedule (or trained_betas), cumprod in double.
  DiffusionSchedule schedule() const;
  ModelVariance variance() const;
  std::string to_string() const;
};

/// Where a diffusers folder's files are: DIR/config.json (a model repository such as
/// google/ddpm-ema-celebahq-256) or DIR/unet/config.json (a pipeline); the weights are
/// diffusion_pytorch_model.safetensors, else .bin, beside the config; the scheduler config is
/// DIR/scheduler_config.json or DIR/scheduler/scheduler_config.json (empty when neither exists).
struct DiffusersFolder {
  std::string config;
  std::string weights;
  std::string scheduler_config;
};
/// InputError naming the folder and what is missing (config.json only when need_config).
DiffusersFolder find_diffusers_folder(const std::string& dir, bool need_config = true);
/// True when `dir` looks like a diffusers folder (a directory with config.json or unet/).
bool is_diffusers_folder(const std::string& dir);

/// Parses a UNet2DModel config.json. InputError (one line, naming the file) for a malformed file,
/// another _class_name, unknown keys (named), wrong value types, and unsupported settings: block
/// types other than DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D (named), fourier time
/// embeddings, class embeddings, resnet up/down sampling, activations other than silu.
/// Keys the file omits take diffusers' defaults (listed in `missing` when given).
DiffusersUNetConfig read_diffusers_unet_config(const std::string& path,
                                               std::vector<std::string>* missing = nullptr);
/// The same from JSON text (`where` names it in errors).
DiffusersUNetConfig parse_diffusers_unet_config(const std::string& json, const std::string& where,
                                                std::vector<std::string>* missing = nullptr);

/// Parses a scheduler_config.json. Keys this project does not use are listed in `ignored`
/// (scheduler classes carry their own); settings that would change the process and are not
/// supported (thresholding, rescale_betas_zero_snr, an unknown variance or prediction type) are
/// a one-line InputError naming the key.
DiffusersSchedulerConfig read_diffusers_scheduler_config(
    const std::string& path, std::vector<std::string>* ignored = nullptr);
DiffusersSchedulerConfig parse_diffusers_scheduler_config(
    const std::string& json, const std::string& where, std::vector<std::string>* ignored = nullptr);

/// A model of the google/ddpm family with its published configuration (written here from the
/// hub repository's config.json and scheduler_config.json; the weights are the user's download).
struct DiffusersPreset {
  std::string name;        ///< registry name, e.g. ddpm_celebahq256
  std::string repository;  ///< e.g. google/ddpm-ema-celebahq-256
  std::string what;        ///< one line for `copaint list`
  std::string unet_json;
  std::string scheduler_json;
};
/// ddpm_celebahq256, ddpm_church256, ddpm_bedroom256, ddpm_cat256 (DDPM's 256x256 models: one
/// architecture, 113.7M parameters, linear betas 1e-4..0.02 over 1000 steps, fixed_small).
const std::vector<DiffusersPreset>& diffusers_presets();

}  // namespace copaint
