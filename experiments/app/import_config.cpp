// `copaint import-config`: the official code's YAML configs and command-line overrides as one of
// our experiment files (the key table is in methods/README.md).
#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "experiments/experiment/external.h"
#include "framework/core/error.h"
#include "framework/core/options.h"
#include "methods/reference_config.h"

namespace copaint {

namespace {

std::string unquote(std::string v) {
  v = trim(v);
  if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front())
    return v.substr(1, v.size() - 2);
  return v;
}

/// The reference's YAML subset: nested mappings by indentation, scalars, `#` comments.
std::map<std::string, std::string> flatten_yaml(const std::string& text) {
  std::map<std::string, std::string> out;
  std::vector<std::pair<size_t, std::string>> stack;  // (indent, key)
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // Strip a comment that is not inside quotes.
    bool quote = false;
    char q = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if ((c == '\'' || c == '"') && (!quote || c == q)) {
        quote = !quote;
        q = c;
      } else if (c == '#' && !quote && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line = line.substr(0, i);
        break;
      }
    }
    if (trim(line).empty()) continue;
    const size_t indent = line.find_first_not_of(' ');
    const auto colon = line.find(':');
    if (colon == std::string::npos)
      throw InputError("import-config: line " + std::to_string(n) + ": expected 'key: value'");
    const std::string key = trim(line.substr(indent, colon - indent));
    const std::string value = trim(line.substr(colon + 1));
    while (!stack.empty() && stack.back().first >= indent) stack.pop_back();
    std::string full;
    for (const auto& [i, k] : stack) full += k + ".";
    full += key;
    if (value.empty()) {
      stack.emplace_back(indent, key);
      out[full];  // a mapping (or an empty value such as `classifier_path:`)
    } else {
      out[full] = unquote(value);
    }
  }
  return out;
}

bool truthy(const std::string& v) {
  std::string l;
  for (char c : v) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return l == "true" || l == "1" || l == "yes" || l == "on";
}

/// The reference's config as flat keys (overrides applied), and the keys the import has read.
class RefConfig {
 public:
  explicit RefConfig(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  /// The value of `key`, or `fallback` where it is absent or empty; does not mark it read.
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() || it->second.empty() ? fallback : it->second;
  }
  /// The value of `key` (empty where absent), marked read: not listed as without counterpart.
  std::string use(const std::string& key) {
    mark(key);
    return get(key);
  }
  /// Marks `key` read without taking its value.
  void mark(const std::string& key) { used_.insert(key); }
  /// Whether `key` was read.
  bool used(const std::string& key) const { return used_.count(key) > 0; }
  /// Every key and value, in key order.
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

/// The UNet flags of the presets (and the reference's run flags): no counterpart, not listed.
const std::set<std::string> kUnetFlags = {"attention_resolutions",
                                          "class_cond",
                                          "diffusion_steps",
                                          "learn_sigma",
                                          "noise_schedule",
                                          "num_channels",
                                          "num_head_channels",
                                          "num_heads",
                                          "num_res_blocks",
                                          "resblock_updown",
                                          "use_fp16",
                                          "use_scale_shift_norm",
                                          "num_heads_upsample",
                                          "channel_mult",
                                          "dropout",
                                          "use_checkpoint",
                                          "use_new_attention_order",
                                          "image_size",
                                          "use_kl",
                                          "predict_xstart",
                                          "rescale_timesteps",
                                          "rescale_learned_sigmas",
                                          "clip_denoised",
                                          "use_ddim",
                                          "respace_interpolate",
                                          "lr_kernel_n_std",
                                          "num_samples",
                                          "show_progress",
                                          "use_git",
                                          "resume",
                                          "debug",
                                          "input_image",
                                          "mask",
                                          "outdir"};

/// The algorithms' sections: settings of another algorithm than the one imported do not apply.
const std::set<std::string> kAlgorithmSections = {"ddim", "optimize_xt", "repaint", "ddnm",
                                                  "ddrm", "dps",         "resample"};

/// Applies overrides as the reference's argparse takes them: key=value, or a bare key (a flag:
/// true); each must name a key of the config.
void apply_overrides(std::map<std::string, std::string>& ref,
                     const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    std::string k = o, v = "true";
    if (const auto eq = o.find('='); eq != std::string::npos) {
      k = o.substr(0, eq);
      v = o.substr(eq + 1);
    }
    while (!k.empty() && k.front() == '-') k.erase(k.begin());
    k = trim(k);
    if (k.empty()) throw UsageError("import-config: empty override '" + o + "'");
    if (!ref.count(k)) throw UsageError("import-config: '" + k + "' is not a key of the config");
    ref[k] = unquote(v);
  }
}

/// Our method for the reference's algorithm (o_ddim with time travel: copaint_tt).
std::string method_for(RefConfig& ref) {
  const std::string algorithm = ref.use("algorithm");
  if (algorithm.empty()) {
    throw UsageError(
        "import-config: the config has no 'algorithm' key: not one of the "
        "reference's YAML configs (configs/celebahq.yaml, ...)");
  }
  const bool timetravel = truthy(ref.get("ddim.schedule_params.use_timetravel", "false"));
  try {
    return method_for_algorithm(algorithm, timetravel);
  } catch (const UsageError& e) {
    throw UsageError(std::string("import-config: ") + e.what());
  }
}

/// Our dataset and model for the reference's dataset_name.
struct DatasetModel {
  std::string dataset = "folder", model = "adm";
};

/// CelebA-HQ and ImageNet as our registered datasets and models; anything else a folder of
/// images on the `adm` model.
DatasetModel dataset_model_for(RefConfig& ref) {
  const std::string name = ref.use("dataset_name");
  DatasetModel dm;
  if (name == "celebahq" || name == "celeba-hq") {
    dm = {"celebahq", "celebahq256"};
  } else if (name.rfind("imagenet", 0) == 0) {
    dm = {"imagenet100", "imagenet256"};
  }
  return dm;
}

/// The first line: where the file came from, with the overrides.
void write_origin(std::ostream& out, const std::vector<std::string>& overrides) {
  out << "# Imported by `copaint import-config` from the reference's YAML config";
  if (!overrides.empty()) {
    out << " with";
    for (const auto& o : overrides) out << " --" << o;
  }
  out << ".\n";
}

/// The grid's keys and the model's and dataset's sections; a note where n_iter has no
/// counterpart.
void write_grid(std::ostream& out, std::ostream& notes, RefConfig& ref, const std::string& method,
                const DatasetModel& dm) {
  const std::string outdir = ref.use("outdir");
  out << "name = " << (outdir.empty() ? method : "imported_" + method) << "\n"
      << "model = " << dm.model << "\ndataset = " << dm.dataset << "\nmethods = " << method
      << "\nmasks = " << ref.use("mask_type") << "\nseeds = " << ref.use("seed")
      << "\nsamples = " << ref.use("n_samples") << "\nmetrics = lpips, psnr, ssim, known_mse\n";
  ref.mark("n_iter");
  if (ref.get("n_iter", "1") != "1")
    notes << "# n_iter = " << ref.get("n_iter") << ": samples = n_samples x n_iter in ours\n";

  out << "\n[" << dm.model << "]\ncheckpoint = " << ref.use("model_path") << "\n";
  out << "\n[" << dm.dataset << "]\n";
  const std::string start = ref.use("dataset_starting_index");
  const std::string end = ref.use("dataset_ending_index");
  if (!start.empty() && start != "-1") out << "start = " << start << "\n";
  if (!end.empty() && end != "-1")
    out << "count = " << std::stoll(end) - std::max(0LL, std::stoll(start.empty() ? "0" : start))
        << "\n";
}

/// The method's section: each reference key of its sampler (methods/reference_config.h) that has
/// a value, under our name where it sets an option (left out at the shared default), a note where
/// we reproduce only another value.
std::string method_section(RefConfig& ref, const std::string& method, std::ostream& notes) {
  std::ostringstream settings;
  for (const ReferenceKey& k : reference_keys(method)) {
    const std::string v = ref.use(k.theirs);
    if (v.empty()) continue;
    const std::string other =
        !k.value.empty() && k.value[0] == '$' ? ref.get(k.value.substr(1)) : k.value;
    if (!k.ours.empty()) {
      if (!same_reference_value(v, other)) settings << k.ours << " = " << v << "\n";
    } else if (other != "*" && !same_reference_value(v, other)) {
      notes << "# " << k.theirs << " = " << v << ": not reproduced here (ours: " << other << ")\n";
    }
  }
  if (method == "resample") {
    const std::string keep = ref.get("resample.keep_n_samples");
    if (!keep.empty())
      notes << "# resample.keep_n_samples = " << keep
            << ": the reference keeps keep_n_samples of n_samples particles per batch; ours: "
               "resample.particles per output sample\n";
  }
  return settings.str();
}

/// The keys with a value that were not read, are no UNet flag of the presets, and belong to no
/// algorithm's section or the classifier: one comment line each.
std::string unused_keys(const RefConfig& ref) {
  std::ostringstream unused;
  for (const auto& [k, v] : ref.values()) {
    if (ref.used(k) || kUnetFlags.count(k) || v.empty()) continue;
    const auto dot = k.find('.');
    const std::string head = dot == std::string::npos ? k : k.substr(0, dot);
    if (kAlgorithmSections.count(head)) continue;
    if (k.rfind("classifier", 0) == 0 || k == "cond_y") continue;
    unused << "#   " << k << " = " << v << "\n";
  }
  return unused.str();
}

}  // namespace

std::string import_reference_config(const std::string& yaml_text,
                                    const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> values = flatten_yaml(yaml_text);
  apply_overrides(values, overrides);
  RefConfig ref(std::move(values));
  const std::string method = method_for(ref);
  const DatasetModel dm = dataset_model_for(ref);

  std::ostringstream out, notes;
  write_origin(out, overrides);
  write_grid(out, notes, ref, method, dm);
  out << "\n[" << method << "]\n" << method_section(ref, method, notes);
  out << "\n" << notes.str();
  out << "# UNet flags come from the " << dm.model << " preset (`copaint list models`).\n";
  const std::string unused = unused_keys(ref);
  if (!unused.empty()) out << "# Keys of the config with no counterpart here:\n" << unused;
  return out.str();
}

}  // namespace copaint
