// The reference's config keys per method of ours: the option each sets or the value we reproduce.
#include "methods/reference_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "framework/core/error.h"

namespace copaint {
namespace {

using Keys = std::vector<ReferenceKey>;

Keys operator+(Keys a, const Keys& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Every sampler: the respacing, and the process and run keys that set nothing of a method.
const Keys kCommon = {{"timestep_respacing", "respacing", ""},
                      {"diffusion_steps", "", "1000"},
                      {"noise_schedule", "", "linear"},
                      {"learn_sigma", "", "*"},  // the network's flag (the model preset)
                      {"seed", "", "*"}};        // the grid's seeds (a replay: the recorded draws)

/// The DDIM schedule (DDIMSampler, R_DDIMSampler, O_DDIMSampler): ddim_timesteps over the
/// respaced process, so ddpm_num_steps must be its size.
const Keys kDdim = {{"ddim.schedule_params.num_inference_steps", "steps", "$timestep_respacing"},
                    {"ddim.schedule_params.ddpm_num_steps", "", "$timestep_respacing"},
                    {"ddim.schedule_params.schedule_type", "schedule_type", ""},
                    {"ddim.ddim_sigma", "eta", ""}};

/// The time-travel keys a sampler without time travel passes to ddim_timesteps, which ignores
/// them.
const Keys kNoTimeTravel = {{"ddim.schedule_params.jump_length", "", "*"},
                            {"ddim.schedule_params.jump_n_sample", "", "*"},
                            {"ddim.schedule_params.time_travel_filter_type", "", "*"}};

const Keys kCoPaint = {
    {"optimize_xt.num_iteration_optimize_xt", "G", ""},
    {"optimize_xt.lr_xt", "lr_xt", ""},
    {"optimize_xt.lr_xt_decay", "lr_xt_decay", ""},
    {"optimize_xt.use_smart_lr_xt_decay", "smart_lr", ""},
    {"optimize_xt.use_adaptive_lr_xt", "adaptive_lr", ""},
    {"optimize_xt.coef_xt_reg", "coef_xt_reg", ""},
    {"optimize_xt.coef_xt_reg_decay", "coef_xt_reg_decay", ""},
    {"optimize_xt.mid_interval_num", "mid_interval_num", ""},
    {"optimize_xt.optimize_before_time_travel", "optimize_before_time_travel", ""},
    {"optimize_xt.optimize_xt", "", "true"},  // asserted by O_DDIMSampler
    {"optimize_xt.filter_xT", "", "false"}};

const Keys kTimeTravel = {
    {"ddim.schedule_params.use_timetravel", "", "true"},
    {"ddim.schedule_params.jump_length", "jump_length", ""},
    {"ddim.schedule_params.jump_n_sample", "jump_n_sample", ""},
    {"ddim.schedule_params.time_travel_filter_type", "time_travel_filter", ""}};

/// The measurement (O_DDIM, DDNM, DDRM, DPS read it); the other samplers ignore it.
const Keys kMeasurement = {{"mode", "mode", "inpaint"}, {"scale", "scale", "0"}};
const Keys kNoMeasurement = {{"mode", "", "*"}, {"scale", "", "*"}};

const Keys kClip = {{"clip_denoised", "clip_denoised", "true"}};

/// `<sampler>.schedule_jump_params`: all four keys (RePaint, DDNM), or only t_T (DDRM and DPS walk
/// the plain list; the other keys at 1).
Keys jump_keys(const std::string& sampler, bool all) {
  const std::string p = sampler + ".schedule_jump_params.";
  if (all) {
    return {{p + "t_T", "t_T", ""},
            {p + "n_sample", "n_sample", ""},
            {p + "jump_length", "jump_length", ""},
            {p + "jump_n_sample", "jump_n_sample", ""}};
  }
  return {{p + "t_T", "t_T", ""},
          {p + "n_sample", "", "1"},
          {p + "jump_length", "", "1"},
          {p + "jump_n_sample", "", "1"}};
}

const std::map<std::string, Keys>& tables() {
  static const std::map<std::string, Keys> t = {
      {"copaint", kCommon + kDdim + kCoPaint +
                      Keys{{"ddim.schedule_params.use_timetravel", "", "false"}} + kNoTimeTravel +
                      kMeasurement + kClip},
      {"copaint_tt", kCommon + kDdim + kCoPaint + kTimeTravel + kMeasurement + kClip},
      {"blended", kCommon + kDdim + kNoTimeTravel +
                      Keys{{"ddim.schedule_params.use_timetravel", "", "*"}} + kNoMeasurement +
                      kClip},
      {"resample", kCommon + kDdim + kNoTimeTravel +
                       Keys{{"ddim.schedule_params.use_timetravel", "", "*"},
                            // our particles per output sample; a replay checks the first pick
                            {"resample.keep_n_samples", "", "*"}} +
                       kNoMeasurement + kClip},
      {"repaint", kCommon + jump_keys("repaint", true) +
                      Keys{{"repaint.inpa_inj_sched_prev", "", "true"},
                           {"repaint.inpa_inj_sched_prev_cumnoise", "", "false"}} +
                      kNoMeasurement + kClip},
      {"ddnm", kCommon + jump_keys("ddnm", true) +
                   Keys{{"ddnm.eta", "eta", "0.85"}, {"ddnm.sigma_y", "sigma_y", "0"}} +
                   kMeasurement + kClip},
      // DDRM never clips its x0 prediction: clip_denoised is not read.
      {"ddrm",
       kCommon + jump_keys("ddrm", false) + kMeasurement + Keys{{"clip_denoised", "", "*"}}},
      {"dps", kCommon + Keys{{"dps.step_size", "step_size", ""}, {"dps.eta", "eta", ""}} +
                  jump_keys("dps", false) + Keys{{"dps.noise_type", "", "gaussian"}} +
                  kMeasurement + kClip},
  };
  return t;
}

std::string lower(std::string v) {
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v;
}

/// The value `v` of an entry, "$key" resolved against `settings`.
std::string resolved(const std::string& v, const std::map<std::string, std::string>& settings) {
  if (v.empty() || v[0] != '$') return v;
  const auto it = settings.find(v.substr(1));
  return it == settings.end() ? std::string("*") : it->second;
}

}  // namespace

std::string method_for_algorithm(const std::string& algorithm, bool time_travel) {
  static const std::map<std::string, std::string> methods = {
      {"ddim", "blended"}, {"resample", "resample"}, {"repaint", "repaint"},
      {"ddnm", "ddnm"},    {"ddrm", "ddrm"},         {"dps", "dps"}};
  if (algorithm == "o_ddim") return time_travel ? "copaint_tt" : "copaint";
  if (const auto it = methods.find(algorithm); it != methods.end()) return it->second;
  throw UsageError("unknown reference algorithm '" + algorithm +
                   "' (the reference's: o_ddim, ddim, resample, repaint, ddnm, ddrm, dps)");
}

const std::vector<ReferenceKey>& reference_keys(const std::string& method) {
  const auto it = tables().find(method);
  if (it == tables().end()) throw UsageError("the reference has no sampler for '" + method + "'");
  return it->second;
}

const ReferenceKey* find_reference_key(const std::string& method, const std::string& theirs) {
  for (const ReferenceKey& k : reference_keys(method)) {
    if (k.theirs == theirs) return &k;
  }
  return nullptr;
}

bool same_reference_value(const std::string& a, const std::string& b) {
  if (a == b) return true;
  const std::string la = lower(a), lb = lower(b);
  const auto truth = [](const std::string& v) { return v == "true" || v == "false"; };
  if (truth(la) || truth(lb)) return la == lb;
  try {
    size_t ua = 0, ub = 0;
    const double da = std::stod(a, &ua), db = std::stod(b, &ub);
    return ua == a.size() && ub == b.size() && da == db;
  } catch (const std::exception&) {
    return false;
  }
}

Options options_from_reference(const std::string& method,
                               const std::map<std::string, std::string>& settings) {
  Options options;
  for (const auto& [key, value] : settings) {
    const ReferenceKey* k = find_reference_key(method, key);
    if (k == nullptr) {
      throw UsageError("reference setting '" + key + "' has no counterpart in our " + method);
    }
    const std::string want = resolved(k->value, settings);
    if (!k->ours.empty()) {
      options.set(k->ours, value);
    } else if (want != "*" && !same_reference_value(value, want)) {
      throw UsageError("reference setting '" + key + " = " + value + "' is not reproduced by our " +
                       method + " (only " + want + ")");
    }
  }
  return options;
}

}  // namespace copaint
