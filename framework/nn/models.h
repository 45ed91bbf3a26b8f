// The model registry's built-in entries (celebahq256, imagenet256, adm, diffusers and the
// google/ddpm presets, gaussian) and the mapping between guided-diffusion's flags and UNetConfig.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/options.h"
#include "framework/diffusion/model.h"
#include "framework/nn/unet.h"

namespace copaint {

/// Registers celebahq256, imagenet256, adm, diffusers, ddpm_*256 and gaussian in
/// Registry<Denoiser>::global(). Their options are set scoped by the entry's name (`--set
/// adm.num_channels=32`). Idempotent.
void register_builtin_models();

/// Every flag of the `adm` entry with its value in `config`, in guided-diffusion's spelling
/// (image_size, num_channels, num_res_blocks, channel_mult, learn_sigma, class_cond,
/// attention_resolutions, num_heads, num_head_channels, num_heads_upsample,
/// use_scale_shift_norm, resblock_updown, use_new_attention_order, use_fp16, dropout) plus
/// in_channels and num_classes (constants in guided-diffusion: 3 and 1000).
std::vector<std::pair<std::string, std::string>> adm_flags(const UNetConfig& config);

/// The inverse of adm_flags: a UNetConfig from resolved `adm` options. Throws UsageError for
/// malformed values.
UNetConfig adm_config_from_options(const Options& options);

/// The resolved model settings that can change samples, for cell keys and stored results: without
/// the speed-only run settings (channels_last, grad_checkpoint, cudnn_benchmark) and without
/// precision when it is the default `auto`, so results of runs that differ only in those share
/// their cells (a resumed run may change them), and results stored before they existed still
/// match. An explicit precision (fp32, tf32, bf16, fp16) stays: it changes the rounding.
Options model_settings_for_results(const Options& model_settings);

/// The model settings with `precision=auto` resolved where it means half precision on `device`:
/// fp16 for a use_fp16 model on CUDA (the same arithmetic as an explicit fp16, so the same
/// cells). Elsewhere auto stays (float32; the keys of results stored before are unchanged). The
/// runner keys cells with this, so a grid started on a GPU and resumed on the CPU stores its
/// float32 samples in cells of their own instead of mixing them with the fp16 ones.
Options resolve_auto_precision(const Options& model_settings, const c10::Device& device);

/// Registry<Denoiser>::global().create(name, settings.scope(name)): the model `name` with the
/// settings whose keys start with `name.`.
std::unique_ptr<Denoiser> create_model(const std::string& name, const Options& settings);

}  // namespace copaint
