// Registration of the model presets (checkpoint-backed UNets and the analytic test model).
#include "framework/nn/models.h"

#include <filesystem>
#include <sstream>

#include <ATen/ATen.h>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/diffusers_unet.h"

namespace copaint {
namespace {

std::string b(bool v) { return v ? "true" : "false"; }

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

/// Checks the checkpoint option of `entry` and loads the UNet.
std::unique_ptr<Denoiser> load_unet(const std::string& entry, const UNetConfig& config,
                                    const std::string& path, UNetRunOptions run) {
  if (path.empty()) {
    throw UsageError("model '" + entry + "' needs a checkpoint: give --checkpoint FILE or --set " +
                     entry + ".checkpoint=FILE");
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError("checkpoint '" + path + "' of model '" + entry + "': " +
                     (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  }
  auto unet = std::make_shared<UNet>(config);
  const StateDict sd = load_state_dict(path);
  try {
    unet->load(sd);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  unet->requires_grad_(false);
  return std::make_unique<UNetDenoiser>(std::move(unet), run);
}

/// The run settings every UNet entry takes (UNetRunOptions).
std::vector<OptionSpec> run_specs() {
  return {
      OptionSpec{
          "precision", "auto",
          "auto | fp32 | tf32 | bf16 | fp16: auto = fp16 when use_fp16 (falling back to fp32 "
          "on the CPU), else fp32; fp32 (TF32 off on CUDA), tf32 (TF32 tensor cores, CUDA), "
          "bf16 (bfloat16 torso, CPU or CUDA), fp16 (float16 torso, CUDA only); see README"}
          .one_of({"auto", "fp32", "tf32", "bf16", "fp16"}),
      {"channels_last", "false", "NHWC memory layout for weights and activations (speed only)"},
      {"grad_checkpoint", "false",
       "recompute UNet blocks during backward: less memory for copaint/dps, ~1 more forward per "
       "backward (speed only)"},
      {"cudnn_benchmark", "false",
       "cuDNN autotuning on CUDA: faster, rounding may vary by run (speed only)"},
  };
}

/// UNetRunOptions from run_specs() values.
UNetRunOptions run_options_from(const Options& o, bool use_fp16) {
  UNetRunOptions r;
  const std::string precision = o.get("precision");
  if (precision == "auto") {
    r.precision = use_fp16 ? Precision::kFp16 : Precision::kFp32;
    r.fp16_falls_back_on_cpu = use_fp16;
  } else {
    r.precision = parse_precision(precision);
  }
  r.channels_last = o.get_bool("channels_last");
  r.grad_checkpoint = o.get_bool("grad_checkpoint");
  r.cudnn_benchmark = o.get_bool("cudnn_benchmark");
  return r;
}

/// Runs `fn`, prefixing option errors with the entry's name.
template <class F>
auto with_prefix(const std::string& entry, F fn) {
  try {
    return fn();
  } catch (const UsageError& e) {
    const std::string what = e.what();
    if (what.rfind("model '", 0) == 0) throw;
    throw UsageError("model '" + entry + "': " + what);
  }
}

const char* flag_help(const std::string& flag) {
  static const std::vector<std::pair<std::string, const char*>> help = {
      {"image_size", "training resolution (resolves channel_mult \"\" and attention_resolutions)"},
      {"in_channels", "image channels (not a guided-diffusion flag: it always uses 3)"},
      {"num_channels", "base width (model_channels)"},
      {"num_res_blocks", "res blocks per level"},
      {"channel_mult", "level multipliers, e.g. 1,2,2 (empty = guided-diffusion's default)"},
      {"learn_sigma", "network outputs eps and variance channels (2x channels)"},
      {"class_cond", "class-conditional (has label_emb)"},
      {"num_classes", "rows of label_emb when class_cond (guided-diffusion: 1000)"},
      {"attention_resolutions", "feature-map sizes with attention, e.g. 32,16,8"},
      {"num_heads", "attention heads (when num_head_channels = -1)"},
      {"num_head_channels", "channels per head; overrides num_heads when != -1"},
      {"num_heads_upsample", "decoder heads (-1 = num_heads)"},
      {"use_scale_shift_norm", "FiLM conditioning in res blocks"},
      {"resblock_updown", "res blocks do the up/down sampling"},
      {"use_new_attention_order", "QKVAttention (split qkv, then heads) instead of legacy order"},
      {"use_fp16", "fp16 torso on CUDA, ignored with a warning on the CPU (precision=auto)"},
      {"dropout", "recorded only: sampling never uses dropout"},
  };
  for (const auto& [k, h] : help) {
    if (k == flag) return h;
  }
  return "";
}

/// The declared range of an ADM architecture flag (the others are booleans or lists).
OptionSpec with_range(const OptionSpec& spec) {
  const std::string& k = spec.key;
  if (k == "image_size") return spec.integer().at_least(1).confirm_above(4096);
  if (k == "in_channels" || k == "num_channels" || k == "num_heads")
    return spec.integer().at_least(1);
  if (k == "num_res_blocks" || k == "num_classes") return spec.integer().at_least(0);
  if (k == "num_head_channels" || k == "num_heads_upsample") return spec.integer().at_least(-1);
  if (k == "dropout") return spec.number().at_least(0).at_most(1);
  return spec;
}

std::vector<OptionSpec> adm_specs() {
  UNetConfig d;
  std::vector<OptionSpec> specs;
  for (const auto& [k, v] : adm_flags(d))
    specs.push_back(with_range(OptionSpec{k, v, flag_help(k)}));
  specs.push_back({"checkpoint", "", "checkpoint file (torch.save zip/legacy or .safetensors)"});
  for (auto& spec : run_specs()) specs.push_back(std::move(spec));
  return specs;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> adm_flags(const UNetConfig& c) {
  return {
      {"image_size", std::to_string(c.image_size)},
      {"in_channels", std::to_string(c.in_channels)},
      {"num_channels", std::to_string(c.num_channels)},
      {"num_res_blocks", std::to_string(c.num_res_blocks)},
      {"channel_mult", c.channel_mult},
      {"learn_sigma", b(c.learn_sigma)},
      {"class_cond", b(c.class_cond)},
      {"num_classes", std::to_string(c.num_classes)},
      {"attention_resolutions", c.attention_resolutions},
      {"num_heads", std::to_string(c.num_heads)},
      {"num_head_channels", std::to_string(c.num_head_channels)},
      {"num_heads_upsample", std::to_string(c.num_heads_upsample)},
      {"use_scale_shift_norm", b(c.use_scale_shift_norm)},
      {"resblock_updown", b(c.resblock_updown)},
      {"use_new_attention_order", b(c.use_new_attention_order)},
      {"use_fp16", b(c.use_fp16)},
      {"dropout", num(c.dropout)},
  };
}

UNetConfig adm_config_from_options(const Options& o) {
  UNetConfig c;
  auto i = [&](const char* k) { return static_cast<int>(o.get_int(k)); };
  c.image_size = i("image_size");
  c.in_channels = i("in_channels");
  c.num_channels = i("num_channels");
  c.num_res_blocks = i("num_res_blocks");
  c.channel_mult = o.get("channel_mult");
  c.learn_sigma = o.get_bool("learn_sigma");
  c.class_cond = o.get_bool("class_cond");
  c.num_classes = i("num_classes");
  c.attention_resolutions = o.get("attention_resolutions");
  c.num_heads = i("num_heads");
  c.num_head_channels = i("num_head_channels");
  c.num_heads_upsample = i("num_heads_upsample");
  c.use_scale_shift_norm = o.get_bool("use_scale_shift_norm");
  c.resblock_updown = o.get_bool("resblock_updown");
  c.use_new_attention_order = o.get_bool("use_new_attention_order");
  c.use_fp16 = o.get_bool("use_fp16");
  c.dropout = o.get_double("dropout");
  if (c.image_size <= 0 || c.in_channels <= 0 || c.num_channels <= 0 || c.num_res_blocks < 0) {
    throw UsageError(
        "image_size, in_channels and num_channels must be positive, "
        "num_res_blocks non-negative");
  }
  c.resolved_channel_mult();  // validates channel_mult now rather than at load time
  return c;
}

Options model_settings_for_results(const Options& model_settings) {
  Options out = model_settings;
  for (const char* key : {"channels_last", "grad_checkpoint", "cudnn_benchmark"}) out.erase(key);
  if (out.get("precision", "auto") == "auto") out.erase("precision");
  return out;
}

Options resolve_auto_precision(const Options& model_settings, const c10::Device& device) {
  Options out = model_settings;
  if (device.is_cuda() && out.has("precision") && out.get("precision") == "auto" &&
      out.has("use_fp16") && out.get_bool("use_fp16")) {
    out.set("precision", "fp16");
  }
  return out;
}

std::unique_ptr<Denoiser> create_model(const std::string& name, const Options& settings) {
  return Registry<Denoiser>::global().create(name, settings.scope(name));
}

void register_builtin_models() {
  auto& reg = Registry<Denoiser>::global();
  for (const std::string& preset : unet_preset_names()) {
    const UNetConfig config = unet_preset(preset);
    const std::string what = preset == "celebahq256"
                                 ? "RePaint's CelebA-HQ 256x256 ADM UNet (unconditional)"
                                 : "OpenAI's class-conditional ImageNet 256x256 ADM UNet";
    std::vector<OptionSpec> specs = {
        {"checkpoint", "", "checkpoint file (torch.save zip/legacy or .safetensors)"},
        {"use_fp16", b(config.use_fp16), flag_help("use_fp16")}};
    for (auto& spec : run_specs()) specs.push_back(std::move(spec));
    reg.add({preset, what + " (the paper's checkpoint; needs checkpoint=FILE)", std::move(specs),
             [preset](const Options& o) {
               return with_prefix(preset, [&] {
                 UNetConfig c = unet_preset(preset);
                 c.use_fp16 = o.get_bool("use_fp16");
                 return load_unet(preset, c, o.get("checkpoint"), run_options_from(o, c.use_fp16));
               });
             }});
  }
  reg.add({"adm",
           "any guided-diffusion ADM UNet: architecture flags named as guided-diffusion's "
           "(`copaint inspect FILE` prints them for a checkpoint)",
           adm_specs(), [](const Options& o) {
             return with_prefix("adm", [&] {
               const UNetConfig c = adm_config_from_options(o);
               return load_unet("adm", c, o.get("checkpoint"), run_options_from(o, c.use_fp16));
             });
           }});
  const auto diffusers_model = [](const std::string& entry, const Options& o,
                                  const DiffusersPreset* preset) -> std::unique_ptr<Denoiser> {
    const std::string dir = o.get("checkpoint");
    if (dir.empty()) {
      throw UsageError("model '" + entry + "' needs a diffusers folder: give --checkpoint DIR or " +
                       "--set " + entry + ".checkpoint=DIR");
    }
    return DiffusersDenoiser::from_folder(dir, preset);
  };
  reg.add(
      {"diffusers",
       "a diffusers UNet2DModel folder (config.json, diffusion_pytorch_model.safetensors or "
       ".bin, scheduler_config.json): the google/ddpm family and pixel-space fine-tunes",
       {{"checkpoint", "", "the diffusers folder (DIR or DIR/unet holds config.json)"}},
       [diffusers_model](const Options& o) { return diffusers_model("diffusers", o, nullptr); }});
  for (const DiffusersPreset& preset : diffusers_presets()) {
    const DiffusersPreset* p = &preset;
    reg.add(
        {preset.name,
         preset.what + " (" + preset.repository + ": the user's download; needs checkpoint=DIR)",
         {{"checkpoint", "", "the folder of " + preset.repository}},
         [diffusers_model, p](const Options& o) { return diffusers_model(p->name, o, p); }});
  }
  reg.add(
      {"gaussian",
       "analytic test model: data ~ N(mean, std^2) per pixel, exact eps (no checkpoint)",
       {OptionSpec{"image_size", "32", "image side"}.integer().at_least(1).confirm_above(4096),
        OptionSpec{"channels", "3", "image channels"}.integer().at_least(1),
        OptionSpec{"mean", "0", "mean of every pixel, in [-1,1]"}.number().at_least(-1).at_most(1),
        OptionSpec{"std", "0.5", "standard deviation of every pixel (> 0)"}.number().above(0)},
       [](const Options& o) -> std::unique_ptr<Denoiser> {
         return with_prefix("gaussian", [&]() -> std::unique_ptr<Denoiser> {
           const int64_t size = o.get_int("image_size"), ch = o.get_int("channels");
           const double mean = o.get_double("mean"), std = o.get_double("std");
           if (size <= 0 || ch <= 0) throw UsageError("image_size and channels must be positive");
           if (!(mean >= -1 && mean <= 1)) throw UsageError("mean must be in [-1,1]");
           if (!(std > 0)) throw UsageError("std must be positive");
           return std::make_unique<GaussianDenoiser>(at::full({ch, size, size}, mean), std);
         });
       }});
}

}  // namespace copaint
