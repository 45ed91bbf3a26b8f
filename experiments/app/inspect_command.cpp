// `copaint inspect CHECKPOINT`: the file's format, tensor and parameter counts, dtypes, and the ADM
// configuration inferred from the tensor shapes as ready-to-paste `--set adm.<flag>=<value>` lines;
// for a diffusers folder, its UNet2DModel's blocks, parameters and scheduler.
#include <cstdio>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <boost/program_options.hpp>

#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/app/inpaint_command.h"
#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/nn/diffusers_unet.h"
#include "framework/nn/models.h"
#include "framework/nn/unet.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

/// 1234567 -> "1,234,567".
std::string grouped(int64_t v) {
  std::string s = std::to_string(v), out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n > 0 && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

/// PyTorch's spelling of a dtype: float32, float16, int64, ...
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(t);
  }
}

bool same_layout(const UNetLayout& layout, const StateDict& sd) {
  if (layout.size() != sd.size()) return false;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [k, t] : sd) shapes[k] = t.sizes().vec();
  for (const auto& [k, s] : layout) {
    auto it = shapes.find(k);
    if (it == shapes.end() || it->second != s) return false;
  }
  return true;
}

/// What `copaint inspect` was asked, typed.
struct InspectRequest {
  std::string path;    ///< the checkpoint
  int image_size = 0;  ///< the training resolution (0: infer from guided-diffusion's defaults)
};

/// The options of `copaint inspect`.
po::options_description inspect_options() {
  po::options_description d(
      "usage: copaint inspect CHECKPOINT [--image-size N]\n"
      "       copaint inspect DIFFUSERS_DIR\n\nOptions");
  d.add_options()("help,h", "print this help")(
      "image-size", po::value<int>()->default_value(0),
      "training resolution, when channel_mult is not one of guided-diffusion's defaults (0 = "
      "infer from the defaults)")("checkpoint", po::value<std::string>(), "the file to inspect");
  return d;
}

const char* kInspectNotes =
    "\nPrints the container format, tensor and parameter counts, dtypes, and the ADM\n"
    "UNet flags inferred from the tensor shapes as `--set adm.<flag>=<value>` lines\n"
    "for `copaint inpaint --model adm`. The attention head split, fp16 and dropout\n"
    "leave no trace in the shapes; those flags are listed separately.\n";

/// The flags as an InspectRequest, checked.
InspectRequest parse_inspect_request(const po::variables_map& vm) {
  if (!vm.count("checkpoint")) throw UsageError("inspect: give a checkpoint file");
  InspectRequest r;
  r.path = vm["checkpoint"].as<std::string>();
  r.image_size = vm["image-size"].as<int>();
  if (r.image_size < 0) throw UsageError("inspect: --image-size must be >= 0");
  return r;
}

/// The file, its container format, tensor and parameter counts, and its dtypes.
void print_contents(std::ostream& os, const std::string& path, const std::string& format,
                    const StateDict& sd) {
  int64_t params = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> dtypes;  // name -> (tensors, values)
  for (const auto& [name, t] : sd) {
    params += t.numel();
    auto& e = dtypes[dtype_name(t.scalar_type())];
    e.first += 1;
    e.second += t.numel();
  }
  os << "file: " << path << "\n"
     << "format: " << format << "\n"
     << "tensors: " << sd.size() << "\n"
     << "parameters: " << grouped(params) << "\n"
     << "dtypes:";
  bool first = true;
  for (const auto& [name, e] : dtypes) {
    os << (first ? " " : ", ") << name << " (" << e.first << " tensors, " << grouped(e.second)
       << " values)";
    first = false;
  }
  os << "\n";
}

/// The ADM configuration inferred from the shapes: whether it is one, and whether the image size
/// is known (else inferred at a placeholder size).
struct Inferred {
  UNetConfig config;
  bool is_unet = true;
  bool size_known = true;
};

/// Infers the configuration, printing why where it is no ADM UNet or its size is not known.
Inferred infer_config(std::ostream& os, const StateDict& sd, int image_size) {
  Inferred inf;
  try {
    inf.config = infer_unet_config(sd, image_size);
  } catch (const InputError& e) {
    os << "\nnot an ADM UNet state_dict: " << e.what() << "\n";
    inf.is_unet = false;
  } catch (const UsageError& e) {
    if (image_size > 0) throw UsageError("inspect: " + std::string(e.what()));
    // channel_mult is no default: infer the rest at a placeholder size divisible by any rate.
    inf.config = infer_unet_config(sd, 1 << 12);
    inf.size_known = false;
    os << "\nnote: " << e.what() << "\n";
  }
  return inf;
}

/// The heading of the inferred configuration, and each preset whose layout the file has.
void print_presets(std::ostream& os, const std::string& path, const StateDict& sd,
                   bool size_known) {
  os << "\nADM UNet ("
     << (size_known ? "layout verified: the flags below rebuild all "
                    : "layout verified at a placeholder image size: ")
     << sd.size() << " tensors)\n";
  for (const std::string& preset : unet_preset_names()) {
    const UNetConfig p = unet_preset(preset);
    if (size_known && same_layout(UNet::layout(p), sd)) {
      os << "matches the preset '" << preset << "': --model " << preset << " --checkpoint " << path
         << "\n";
    }
  }
}

/// The inferred flags as `--set adm.` lines, then those the shapes do not determine.
void print_flags(std::ostream& os, const std::string& path, const Inferred& inf) {
  const std::set<std::string> not_inferable = {"num_heads",          "num_head_channels",
                                               "num_heads_upsample", "use_new_attention_order",
                                               "use_fp16",           "dropout"};
  std::set<std::string> unknown_size;
  if (!inf.size_known) unknown_size = {"image_size", "attention_resolutions"};
  const auto flags = adm_flags(inf.config);
  os << "inferred flags (paste after `copaint inpaint --model adm`):\n";
  for (const auto& [k, v] : flags) {
    if (not_inferable.count(k) || unknown_size.count(k)) continue;
    if (k == "num_classes" && !inf.config.class_cond) continue;
    os << "  --set adm." << k << "=" << v << "\n";
  }
  os << "  --set adm.checkpoint=" << path << "\n";
  if (!inf.size_known) {
    std::string rates;
    for (int r : inf.config.attention_downsample_rates()) {
      rates += (rates.empty() ? "" : ",") + std::to_string(r);
    }
    os << "not inferable without --image-size N: image_size, attention_resolutions "
       << "(attention at downsampling rates " << (rates.empty() ? "none" : rates)
       << ": attention_resolutions = image_size / rate)\n";
  }
  os << "not inferable from tensor shapes (guided-diffusion defaults shown; use the training "
        "flags):\n";
  for (const auto& [k, v] : flags) {
    if (not_inferable.count(k)) os << "  --set adm." << k << "=" << v << "\n";
  }
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// A diffusers folder: files, the UNet2DModel's blocks, whether the weights load, the scheduler.
void inspect_diffusers(std::ostream& os, const std::string& dir) {
  const DiffusersFolder folder = find_diffusers_folder(dir);
  const StateDict sd = load_state_dict(folder.weights);
  os << "diffusers folder: " << dir << "\nconfig: " << folder.config << "\n";
  print_contents(os, folder.weights, checkpoint_format(folder.weights), sd);
  std::vector<std::string> missing;
  const DiffusersUNetConfig c = read_diffusers_unet_config(folder.config, &missing);
  os << "\nclass: UNet2DModel, " << c.in_channels << " -> " << c.out_channels
     << " channels, sample_size " << c.sample_size << "\n";
  for (size_t i = 0; i < c.block_out_channels.size(); ++i) {
    os << "  level " << i << ": " << c.down_block_types[i] << " / "
       << c.up_block_types[c.block_out_channels.size() - 1 - i] << ", " << c.block_out_channels[i]
       << " channels\n";
  }
  os << "  mid: UNetMidBlock2D" << (c.add_attention ? " with attention" : "")
     << "; layers_per_block " << c.layers_per_block << ", attention_head_dim "
     << (c.attention_head_dim > 0 ? std::to_string(c.attention_head_dim) : "null (one head)")
     << ", GroupNorm " << c.norm_num_groups << " groups eps " << c.norm_eps << "\n"
     << "  time embedding: positional, flip_sin_to_cos " << (c.flip_sin_to_cos ? "true" : "false")
     << ", freq_shift " << c.freq_shift << "; downsample_padding " << c.downsample_padding << "\n";
  if (!missing.empty()) os << "  absent keys (diffusers' defaults): " << joined(missing) << "\n";
  std::vector<std::string> ignored;
  if (folder.scheduler_config.empty()) {
    os << "scheduler: none (DDPMScheduler's defaults are used)\n";
  } else {
    const auto sched = read_diffusers_scheduler_config(folder.scheduler_config, &ignored);
    os << "scheduler: " << sched.to_string() << "\n";
    if (!ignored.empty()) os << "  keys not used here: " << joined(ignored) << "\n";
  }
  try {
    load_diffusers_unet(c, folder.weights);
    os << "weights: match the config\n";
  } catch (const InputError& e) {
    os << "weights: " << e.what() << "\n";
    return;
  }
  for (const DiffusersPreset& preset : diffusers_presets()) {
    if (parse_diffusers_unet_config(preset.unet_json, preset.name).to_string() == c.to_string()) {
      os << "the architecture of " << preset.repository << " (and its siblings): --model "
         << preset.name << " --checkpoint " << dir << "\n";
      break;
    }
  }
  os << "use: --model diffusers --checkpoint " << dir << "\n";
}

int cmd_inspect(CommandContext& ctx) {
  const po::options_description d = inspect_options();
  po::variables_map vm = parse_command_args(ctx, d, {{"checkpoint", 1}});
  if (vm.count("help")) {
    ctx.out << d << kInspectNotes;
    return 0;
  }
  const InspectRequest r = parse_inspect_request(vm);
  if (is_diffusers_folder(r.path)) {
    inspect_diffusers(ctx.out, r.path);
    return 0;
  }
  const std::string format = checkpoint_format(r.path);
  const StateDict sd = load_state_dict(r.path);
  print_contents(ctx.out, r.path, format, sd);
  const Inferred inf = infer_config(ctx.out, sd, r.image_size);
  if (!inf.is_unet) return 0;
  print_presets(ctx.out, r.path, sd, inf.size_known);
  print_flags(ctx.out, r.path, inf);
  return 0;
}

}  // namespace

void register_inspect_command() {
  add_command({"inspect",
               "show what a checkpoint holds and the `adm` flags inferred from its tensor shapes "
               "(or a diffusers folder's UNet2DModel and scheduler)",
               cmd_inspect});
}

}  // namespace copaint
