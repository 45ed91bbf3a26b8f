// Reading diffusers' config.json / scheduler_config.json into typed configs (nlohmann-json at
// the edge: every key is checked once, by the tables below).
#include "framework/nn/diffusers_config.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/core/error.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Setter = std::function<void(const Json&)>;

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Json parse_json(const std::string& text, const std::string& where) {
  try {
    Json j = Json::parse(text);
    if (!j.is_object()) throw InputError(where + ": expected a JSON object");
    return j;
  } catch (const Json::exception& e) {
    throw InputError(where + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

/// Typed setters: a value of the wrong JSON type is a one-line error naming the key.
template <class T>
Setter set(T* field, const std::string& where, const std::string& key) {
  return [=](const Json& v) {
    try {
      *field = v.get<T>();
    } catch (const Json::exception&) {
      throw InputError(where + ": key '" + key + "' has the wrong type (" + v.dump() + ")");
    }
  };
}

/// An integer that may be null (stored as -1).
Setter set_optional(int64_t* field, const std::string& where, const std::string& key) {
  return [=](const Json& v) {
    if (v.is_null()) {
      *field = -1;
    } else if (v.is_number_integer()) {
      *field = v.get<int64_t>();
    } else {
      throw InputError(where + ": key '" + key + "' must be an integer or null, got " + v.dump());
    }
  };
}

/// A key that must hold `allowed` (e.g. null) because its other values are unsupported.
Setter require(const std::string& where, const std::string& key, const Json& allowed,
               const std::string& why) {
  return [=](const Json& v) {
    if (v != allowed) {
      throw InputError(where + ": " + key + " = " + v.dump() + " is not supported (" + why + ")");
    }
  };
}

/// Applies `setters` to every key of `j`; keys starting with '_' (_class_name, _diffusers_version,
/// _name_or_path) are metadata. Returns the unknown keys and lists the absent ones in `missing`.
std::vector<std::string> apply(const Json& j, const std::map<std::string, Setter>& setters,
                               std::vector<std::string>* missing) {
  std::vector<std::string> unknown;
  for (const auto& [key, value] : j.items()) {
    if (!key.empty() && key[0] == '_') continue;
    const auto it = setters.find(key);
    if (it == setters.end()) {
      unknown.push_back(key);
    } else {
      it->second(value);
    }
  }
  if (missing) {
    for (const auto& [key, setter] : setters) {
      if (!j.contains(key)) missing->push_back(key);
    }
  }
  return unknown;
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

void check_class(const Json& j, const std::string& where, const std::vector<std::string>& ok) {
  if (!j.contains("_class_name")) return;
  const std::string name = j["_class_name"].is_string() ? j["_class_name"].get<std::string>() : "";
  for (const auto& k : ok) {
    if (name == k) return;
  }
  throw InputError(where + ": _class_name '" + name + "' is not supported (" + join(ok) + ")");
}

void check_unet(const DiffusersUNetConfig& c, const std::string& where) {
  const auto fail = [&](const std::string& what) { throw InputError(where + ": " + what); };
  std::vector<std::string> bad;
  for (const auto& t : c.down_block_types) {
    if (t != "DownBlock2D" && t != "AttnDownBlock2D") bad.push_back(t);
  }
  for (const auto& t : c.up_block_types) {
    if (t != "UpBlock2D" && t != "AttnUpBlock2D") bad.push_back(t);
  }
  if (!bad.empty()) {
    fail("unsupported block types " + join(bad) +
         " (supported: DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D)");
  }
  const size_t levels = c.block_out_channels.size();
  if (levels == 0 || c.down_block_types.size() != levels || c.up_block_types.size() != levels) {
    fail("block_out_channels, down_block_types and up_block_types must have the same length");
  }
  if (c.time_embedding_type != "positional") {
    fail("time_embedding_type '" + c.time_embedding_type + "' is not supported (positional)");
  }
  if (c.act_fn != "silu" && c.act_fn != "swish") {
    fail("act_fn '" + c.act_fn + "' is not supported (silu)");
  }
  if (c.downsample_type != "conv" || c.upsample_type != "conv") {
    fail("downsample_type/upsample_type must be conv (resnet up/down sampling is not supported)");
  }
  if (c.resnet_time_scale_shift != "default" && c.resnet_time_scale_shift != "scale_shift") {
    fail("resnet_time_scale_shift '" + c.resnet_time_scale_shift +
         "' is not supported (default, scale_shift)");
  }
  if (c.in_channels < 1 || c.out_channels < 1 || c.layers_per_block < 1 || c.norm_num_groups < 1 ||
      c.sample_size < 0) {
    fail("in_channels, out_channels, layers_per_block and norm_num_groups must be positive");
  }
  for (int64_t ch : c.block_out_channels) {
    if (ch < 1 || ch % c.norm_num_groups != 0) {
      fail("block_out_channels entry " + std::to_string(ch) + " is not a positive multiple of " +
           "norm_num_groups " + std::to_string(c.norm_num_groups));
    }
    if (c.attention_head_dim > 0 && ch % c.attention_head_dim != 0) {
      fail("block_out_channels entry " + std::to_string(ch) + " is not a multiple of " +
           "attention_head_dim " + std::to_string(c.attention_head_dim));
    }
  }
  if (c.block_out_channels[0] % 2 != 0) fail("block_out_channels[0] must be even");
}

std::string str_list(const std::vector<std::string>& v) { return "\"" + join(v, ",") + "\""; }

}  // namespace

std::string DiffusersUNetConfig::to_string() const {
  std::ostringstream s;
  std::string chans;
  for (int64_t c : block_out_channels) chans += (chans.empty() ? "" : ",") + std::to_string(c);
  s << "sample_size=" << sample_size << ",in_channels=" << in_channels
    << ",out_channels=" << out_channels << ",block_out_channels=\"" << chans
    << "\",layers_per_block=" << layers_per_block
    << ",down_block_types=" << str_list(down_block_types)
    << ",up_block_types=" << str_list(up_block_types) << ",add_attention=" << add_attention
    << ",attention_head_dim=" << attention_head_dim << ",norm_num_groups=" << norm_num_groups
    << ",norm_eps=" << norm_eps << ",flip_sin_to_cos=" << flip_sin_to_cos
    << ",freq_shift=" << freq_shift << ",downsample_padding=" << downsample_padding
    << ",mid_block_scale_factor=" << mid_block_scale_factor
    << ",resnet_time_scale_shift=" << resnet_time_scale_shift
    << ",center_input_sample=" << center_input_sample;
  return s.str();
}

DiffusersUNetConfig parse_diffusers_unet_config(const std::string& text, const std::string& where,
                                                std::vector<std::string>* missing) {
  const Json j = parse_json(text, where);
  check_class(j, where, {"UNet2DModel"});
  DiffusersUNetConfig c;
  const auto w = where;
  const std::map<std::string, Setter> setters = {
      {"sample_size", set_optional(&c.sample_size, w, "sample_size")},
      {"in_channels", set(&c.in_channels, w, "in_channels")},
      {"out_channels", set(&c.out_channels, w, "out_channels")},
      {"center_input_sample", set(&c.center_input_sample, w, "center_input_sample")},
      {"time_embedding_type", set(&c.time_embedding_type, w, "time_embedding_type")},
      {"freq_shift", set(&c.freq_shift, w, "freq_shift")},
      {"flip_sin_to_cos", set(&c.flip_sin_to_cos, w, "flip_sin_to_cos")},
      {"down_block_types", set(&c.down_block_types, w, "down_block_types")},
      {"up_block_types", set(&c.up_block_types, w, "up_block_types")},
      {"block_out_channels", set(&c.block_out_channels, w, "block_out_channels")},
      {"layers_per_block", set(&c.layers_per_block, w, "layers_per_block")},
      {"mid_block_scale_factor", set(&c.mid_block_scale_factor, w, "mid_block_scale_factor")},
      {"downsample_padding", set(&c.downsample_padding, w, "downsample_padding")},
      {"downsample_type", set(&c.downsample_type, w, "downsample_type")},
      {"upsample_type", set(&c.upsample_type, w, "upsample_type")},
      {"dropout", set(&c.dropout, w, "dropout")},
      {"act_fn", set(&c.act_fn, w, "act_fn")},
      {"attention_head_dim", set_optional(&c.attention_head_dim, w, "attention_head_dim")},
      {"norm_num_groups", set(&c.norm_num_groups, w, "norm_num_groups")},
      {"attn_norm_num_groups", set_optional(&c.attn_norm_num_groups, w, "attn_norm_num_groups")},
      {"norm_eps", set(&c.norm_eps, w, "norm_eps")},
      {"resnet_time_scale_shift", set(&c.resnet_time_scale_shift, w, "resnet_time_scale_shift")},
      {"add_attention", set(&c.add_attention, w, "add_attention")},
      {"class_embed_type", require(w, "class_embed_type", nullptr, "unconditional models only")},
      {"num_class_embeds", require(w, "num_class_embeds", nullptr, "unconditional models only")},
      {"num_train_timesteps",
       require(w, "num_train_timesteps", nullptr, "learned time embeddings")},
  };
  if (j.contains("sample_size") && j["sample_size"].is_array()) {
    throw InputError(where + ": a non-square sample_size is not supported");
  }
  const std::vector<std::string> unknown = apply(j, setters, missing);
  if (!unknown.empty()) throw InputError(where + ": unknown UNet2DModel keys " + join(unknown));
  check_unet(c, where);
  return c;
}

DiffusersUNetConfig read_diffusers_unet_config(const std::string& path,
                                               std::vector<std::string>* missing) {
  return parse_diffusers_unet_config(read_text(path), path, missing);
}

DiffusersSchedulerConfig parse_diffusers_scheduler_config(const std::string& text,
                                                          const std::string& where,
                                                          std::vector<std::string>* ignored) {
  const Json j = parse_json(text, where);
  DiffusersSchedulerConfig c;
  if (j.contains("_class_name") && j["_class_name"].is_string()) {
    c.class_name = j["_class_name"].get<std::string>();
  }
  const auto w = where;
  const std::map<std::string, Setter> setters = {
      {"num_train_timesteps", set(&c.num_train_timesteps, w, "num_train_timesteps")},
      {"beta_schedule", set(&c.beta_schedule, w, "beta_schedule")},
      {"beta_start", set(&c.beta_start, w, "beta_start")},
      {"beta_end", set(&c.beta_end, w, "beta_end")},
      {"trained_betas",
       [&](const Json& v) {
         if (!v.is_null()) set(&c.trained_betas, w, "trained_betas")(v);
       }},
      {"prediction_type", set(&c.prediction_type, w, "prediction_type")},
      {"variance_type",
       [&](const Json& v) {
         if (!v.is_null()) set(&c.variance_type, w, "variance_type")(v);
       }},
      {"clip_sample", set(&c.clip_sample, w, "clip_sample")},
      {"clip_sample_range", set(&c.clip_sample_range, w, "clip_sample_range")},
      {"set_alpha_to_one", set(&c.set_alpha_to_one, w, "set_alpha_to_one")},
      {"steps_offset", set(&c.steps_offset, w, "steps_offset")},
      {"timestep_spacing", set(&c.timestep_spacing, w, "timestep_spacing")},
      {"thresholding", require(w, "thresholding", false, "dynamic thresholding")},
      {"rescale_betas_zero_snr", require(w, "rescale_betas_zero_snr", false, "zero-SNR betas")},
  };
  std::vector<std::string> unknown = apply(j, setters, nullptr);
  if (ignored) *ignored = unknown;
  if (c.prediction_type != "epsilon" && c.prediction_type != "v_prediction" &&
      c.prediction_type != "sample") {
    throw InputError(where + ": prediction_type '" + c.prediction_type +
                     "' is not supported (epsilon, v_prediction, sample)");
  }
  if (c.num_train_timesteps < 1) throw InputError(where + ": num_train_timesteps must be >= 1");
  if (!c.trained_betas.empty() &&
      static_cast<int64_t>(c.trained_betas.size()) != c.num_train_timesteps) {
    throw InputError(where + ": trained_betas has " + std::to_string(c.trained_betas.size()) +
                     " entries for num_train_timesteps " + std::to_string(c.num_train_timesteps));
  }
  try {
    c.variance();
    c.schedule();
    if (c.timestep_spacing != "leading" && c.timestep_spacing != "trailing" &&
        c.timestep_spacing != "linspace") {
      throw UsageError("timestep_spacing '" + c.timestep_spacing +
                       "' is not supported (leading, trailing, linspace)");
    }
  } catch (const UsageError& e) {
    throw InputError(where + ": " + e.what());
  }
  return c;
}

DiffusersSchedulerConfig read_diffusers_scheduler_config(const std::string& path,
                                                         std::vector<std::string>* ignored) {
  return parse_diffusers_scheduler_config(read_text(path), path, ignored);
}

DiffusionSchedule DiffusersSchedulerConfig::schedule() const {
  if (!trained_betas.empty()) return DiffusionSchedule::from_betas(trained_betas);
  return DiffusionSchedule::from_betas(
      diffusers_betas(beta_schedule, num_train_timesteps, beta_start, beta_end));
}

ModelVariance DiffusersSchedulerConfig::variance() const {
  if (variance_type == "fixed_small" || variance_type == "fixed_small_log") {
    return ModelVariance::kFixedSmall;
  }
  if (variance_type == "fixed_large" || variance_type == "fixed_large_log") {
    return ModelVariance::kFixedLarge;
  }
  if (variance_type == "learned_range") return ModelVariance::kLearnedRange;
  throw UsageError("variance_type '" + variance_type +
                   "' is not supported (fixed_small, fixed_large, learned_range)");
}

std::string DiffusersSchedulerConfig::to_string() const {
  std::ostringstream s;
  s << class_name << ": num_train_timesteps=" << num_train_timesteps
    << ",beta_schedule=" << (trained_betas.empty() ? beta_schedule : "trained_betas")
    << ",beta_start=" << beta_start << ",beta_end=" << beta_end
    << ",prediction_type=" << prediction_type << ",variance_type=" << variance_type
    << ",clip_sample=" << (clip_sample ? "true" : "false")
    << ",timestep_spacing=" << timestep_spacing << ",steps_offset=" << steps_offset
    << ",set_alpha_to_one=" << (set_alpha_to_one ? "true" : "false");
  return s.str();
}

bool is_diffusers_folder(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) &&
         (fs::is_regular_file(fs::path(dir) / "config.json", ec) ||
          fs::is_regular_file(fs::path(dir) / "unet" / "config.json", ec));
}

DiffusersFolder find_diffusers_folder(const std::string& dir, bool need_config) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw InputError("diffusers folder '" + dir +
                     "': " + (fs::exists(dir, ec) ? "not a directory" : "no such directory"));
  }
  fs::path model = dir;
  if (!fs::is_regular_file(model / "config.json", ec) &&
      fs::is_regular_file(model / "unet" / "config.json", ec)) {
    model /= "unet";
  }
  DiffusersFolder f;
  f.config = (model / "config.json").string();
  if (!fs::is_regular_file(f.config, ec)) {
    f.config.clear();
    if (need_config) {
      throw InputError("diffusers folder '" + dir + "': no config.json (nor unet/config.json)");
    }
  }
  for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"}) {
    if (fs::is_regular_file(model / name, ec)) {
      f.weights = (model / name).string();
      break;
    }
  }
  if (f.weights.empty()) {
    throw InputError("diffusers folder '" + model.string() +
                     "': no diffusion_pytorch_model.safetensors or .bin");
  }
  for (const fs::path& p : {fs::path(dir) / "scheduler_config.json",
                            fs::path(dir) / "scheduler" / "scheduler_config.json"}) {
    if (fs::is_regular_file(p, ec)) {
      f.scheduler_config = p.string();
      break;
    }
  }
  return f;
}

}  // namespace copaint

namespace copaint {

const std::vector<DiffusersPreset>& diffusers_presets() {
  // google/ddpm-ema-{celebahq,church,bedroom,cat}-256 and google/ddpm-cat-256 share this
  // config.json (diffusers 0.0.4 conversion of DDPM's TensorFlow checkpoints) and this
  // scheduler_config.json (DDPMScheduler).
  static const std::string unet = R"({
    "_class_name": "UNet2DModel", "act_fn": "silu", "attention_head_dim": null,
    "block_out_channels": [128, 128, 256, 256, 512, 512], "center_input_sample": false,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D",
                         "AttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1, "in_channels": 3,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06,
    "norm_num_groups": 32, "out_channels": 3, "sample_size": 256,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
                       "UpBlock2D"]})";
  static const std::string scheduler = R"({
    "_class_name": "DDPMScheduler", "beta_end": 0.02, "beta_schedule": "linear",
    "beta_start": 0.0001, "clip_sample": true, "num_train_timesteps": 1000,
    "trained_betas": null, "variance_type": "fixed_small"})";
  static const std::vector<DiffusersPreset> presets = {
      {"ddpm_celebahq256", "google/ddpm-ema-celebahq-256",
       "DDPM's CelebA-HQ 256x256 UNet (EMA), the model of diffusers' RePaint pipeline", unet,
       scheduler},
      {"ddpm_church256", "google/ddpm-ema-church-256", "DDPM's LSUN church 256x256 UNet (EMA)",
       unet, scheduler},
      {"ddpm_bedroom256", "google/ddpm-ema-bedroom-256", "DDPM's LSUN bedroom 256x256 UNet (EMA)",
       unet, scheduler},
      {"ddpm_cat256", "google/ddpm-ema-cat-256", "DDPM's LSUN cat 256x256 UNet (EMA)", unet,
       scheduler},
  };
  return presets;
}

}  // namespace copaint
