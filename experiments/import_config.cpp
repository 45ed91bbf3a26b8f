// `copaint import-config`: the official code's YAML configs and command-line overrides as one of
// our experiment files (the key table is in methods/README.md).
#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "experiments/external.h"
#include "framework/error.h"
#include "framework/options.h"

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

}  // namespace

std::string import_reference_config(const std::string& yaml_text,
                                    const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> ref = flatten_yaml(yaml_text);
  // Overrides as the reference's argparse takes them: key=value, or a bare key (a flag: true).
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
  auto get = [&](const std::string& k, const std::string& fallback = "") {
    auto it = ref.find(k);
    return it == ref.end() || it->second.empty() ? fallback : it->second;
  };
  std::set<std::string> used;
  auto use = [&](const std::string& k) {
    used.insert(k);
    return get(k);
  };

  // The method.
  const std::string algorithm = use("algorithm");
  const bool timetravel = truthy(get("ddim.schedule_params.use_timetravel", "false"));
  used.insert("ddim.schedule_params.use_timetravel");
  static const std::map<std::string, std::string> methods = {
      {"ddim", "blended"}, {"resample", "resample"}, {"repaint", "repaint"},
      {"ddnm", "ddnm"},    {"ddrm", "ddrm"},         {"dps", "dps"}};
  std::string method;
  if (algorithm == "o_ddim") {
    method = timetravel ? "copaint_tt" : "copaint";
  } else if (methods.count(algorithm)) {
    method = methods.at(algorithm);
  } else {
    throw UsageError("import-config: unknown algorithm '" + algorithm +
                     "' (the reference's: o_ddim, ddim, resample, repaint, ddnm, ddrm, dps)");
  }
  // The model and dataset.
  const std::string dataset_name = use("dataset_name");
  std::string dataset = "folder", model = "adm";
  if (dataset_name == "celebahq" || dataset_name == "celeba-hq") {
    dataset = "celebahq";
    model = "celebahq256";
  } else if (dataset_name.rfind("imagenet", 0) == 0) {
    dataset = "imagenet100";
    model = "imagenet256";
  }

  std::ostringstream out, settings, notes;
  out << "# Imported by `copaint import-config` from the reference's YAML config";
  if (!overrides.empty()) {
    out << " with";
    for (const auto& o : overrides) out << " --" << o;
  }
  out << ".\n";
  const std::string outdir = use("outdir");
  out << "name = " << (outdir.empty() ? method : "imported_" + method) << "\n"
      << "model = " << model << "\ndataset = " << dataset << "\nmethods = " << method
      << "\nmasks = " << use("mask_type") << "\nseeds = " << use("seed")
      << "\nsamples = " << use("n_samples") << "\nmetrics = lpips, psnr, ssim, known_mse\n";
  used.insert("n_iter");
  if (get("n_iter", "1") != "1")
    notes << "# n_iter = " << get("n_iter") << ": samples = n_samples x n_iter in ours\n";

  out << "\n[" << model << "]\ncheckpoint = " << use("model_path") << "\n";
  out << "\n[" << dataset << "]\n";
  const std::string start = use("dataset_starting_index"), end = use("dataset_ending_index");
  if (!start.empty() && start != "-1") out << "start = " << start << "\n";
  if (!end.empty() && end != "-1")
    out << "count = " << std::stoll(end) - std::max(0LL, std::stoll(start.empty() ? "0" : start))
        << "\n";

  // Method settings.
  auto put = [&](const std::string& ours, const std::string& theirs) {
    const std::string v = use(theirs);
    if (!v.empty()) settings << ours << " = " << v << "\n";
  };
  const std::string respacing = use("timestep_respacing");
  if (!respacing.empty()) settings << "respacing = " << respacing << "\n";
  if (method == "copaint" || method == "copaint_tt" || method == "blended" ||
      method == "resample") {
    const std::string steps = use("ddim.schedule_params.num_inference_steps");
    if (!steps.empty() && steps != respacing) settings << "steps = " << steps << "\n";
    used.insert("ddim.schedule_params.ddpm_num_steps");
    put("schedule_type", "ddim.schedule_params.schedule_type");
    put("eta", "ddim.ddim_sigma");
  }
  if (method == "copaint" || method == "copaint_tt") {
    put("G", "optimize_xt.num_iteration_optimize_xt");
    put("lr_xt", "optimize_xt.lr_xt");
    put("lr_xt_decay", "optimize_xt.lr_xt_decay");
    put("smart_lr", "optimize_xt.use_smart_lr_xt_decay");
    put("adaptive_lr", "optimize_xt.use_adaptive_lr_xt");
    put("coef_xt_reg", "optimize_xt.coef_xt_reg");
    put("coef_xt_reg_decay", "optimize_xt.coef_xt_reg_decay");
    put("mid_interval_num", "optimize_xt.mid_interval_num");
    put("optimize_before_time_travel", "optimize_xt.optimize_before_time_travel");
    used.insert("optimize_xt.optimize_xt");
    used.insert("optimize_xt.filter_xT");
    if (!truthy(get("optimize_xt.optimize_xt", "true")))
      notes << "# optimize_xt.optimize_xt = false: no optimisation (G = 0)\n";
    if (method == "copaint_tt") {
      put("jump_length", "ddim.schedule_params.jump_length");
      put("jump_n_sample", "ddim.schedule_params.jump_n_sample");
      const std::string filter = use("ddim.schedule_params.time_travel_filter_type");
      if (!filter.empty()) settings << "time_travel_filter = " << filter << "\n";
    }
    const std::string mode = use("mode");
    if (!mode.empty() && mode != "inpaint") settings << "mode = " << mode << "\n";
    const std::string scale = use("scale");
    if (!scale.empty() && scale != "0") settings << "scale = " << scale << "\n";
  }
  if (method == "repaint" || method == "ddnm") {
    for (const std::string k : {"t_T", "n_sample", "jump_length", "jump_n_sample"})
      put(k, method + ".schedule_jump_params." + k);
  }
  if (method == "dps") {
    put("step_size", "dps.step_size");
    put("eta", "dps.eta");
  }
  if (method == "resample") {
    const std::string keep = use("resample.keep_n_samples");
    if (!keep.empty())
      notes << "# resample.keep_n_samples = " << keep
            << ": the reference keeps keep_n_samples of n_samples particles per batch; ours: "
               "resample.particles per output sample\n";
  }
  if (method == "repaint") used.insert("repaint.inpa_inj_sched_prev");
  out << "\n[" << method << "]\n" << settings.str();

  // What was not used: the UNet flags of the presets, and everything else listed.
  static const std::set<std::string> unet = {"attention_resolutions",
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
  std::ostringstream unused;
  for (const auto& [k, v] : ref) {
    if (used.count(k) || unet.count(k) || v.empty()) continue;
    const auto dot = k.find('.');
    const std::string head = dot == std::string::npos ? k : k.substr(0, dot);
    // Settings of the other algorithms' sections do not apply to this one.
    if (head == "ddim" || head == "optimize_xt" || head == "repaint" || head == "ddnm" ||
        head == "ddrm" || head == "dps" || head == "resample")
      continue;
    if (k.rfind("classifier", 0) == 0 || k == "cond_y") continue;
    unused << "#   " << k << " = " << v << "\n";
  }
  out << "\n" << notes.str();
  out << "# UNet flags come from the " << model << " preset (`copaint list models`).\n";
  if (!unused.str().empty())
    out << "# Keys of the config with no counterpart here:\n" << unused.str();
  return out.str();
}

}  // namespace copaint
