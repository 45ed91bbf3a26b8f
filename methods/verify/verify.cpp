// Replay of recorded reference runs: loading, per-step and end-to-end checks, reports.
#include "methods/verify/verify.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>

#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/diffusion/diffusion.h"
#include "framework/nn/denoisers.h"
#include "methods/verify/baseline_replay.h"
#include "methods/verify/fixture_io.h"

namespace copaint {
namespace fs = std::filesystem;
namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

/// Models by checkpoint path and device, loaded once per process.
Denoiser& model_for(const std::string& model_path, const std::string& config_path,
                    const c10::Device& device) {
  static std::map<std::string, std::unique_ptr<UNetDenoiser>> models;
  const std::string key = model_path + "@" + device.str();
  auto it = models.find(key);
  if (it == models.end()) {
    const UNetConfig config = unet_config_from_json(read_json(config_path).at("config"));
    auto model = UNetDenoiser::from_checkpoint(config, model_path);
    model->to(device);
    it = models.emplace(key, std::move(model)).first;
  }
  return *it->second;
}

/// Every stride-th recorded call of the reference's step function, from its own inputs.
void check_steps(const RecordedCase& c, Denoiser& model, const VerifyOptions& o, VerifyResult& r,
                 int64_t& backtracks) {
  const CoPaint method(c.params);
  const auto schedule =
      DiffusionSchedule::linear(model.num_train_timesteps()).respaced(c.params.respacing);
  const auto dev = [&](const at::Tensor& t) { return t.to(o.device); };
  const at::Tensor x_in = c.get("x_in"), x_opt = c.get("x_opt"), pred = c.get("pred_x0");
  const at::Tensor traj = c.get("trajectory"), t = c.get("step_t"), prev = c.get("step_prev_t");
  const at::Tensor lr = c.get("step_lr_xt"), coef = c.get("step_coef_xt_reg");
  const at::Tensor kind = c.get("step_kind"), ref_forwards = c.get("step_unet_forward");
  const CoPaintTarget target{dev(c.get("image")), dev(c.get("mask")), at::Tensor(), nullptr};
  // Each call runs with the recorded rate and weight; the first call's must be the settings'
  // (the decays are checked end to end).
  const auto differs = [](double recorded, double setting) {
    return std::abs(recorded - setting) > 1e-6 * std::abs(setting);
  };
  if (differs(lr[0].item<double>(), c.params.lr_xt) ||
      differs(coef[0].item<double>(), c.params.coef_xt_reg)) {
    r.failure = "the first call's lr_xt / coef_xt_reg differ from the recording's settings";
  }
  for (int64_t k = 0; k < x_in.size(0); ++k) {
    if (k % o.step_stride != 0 && kind[k].item<int64_t>() == 0) continue;
    EvalCounter counter;
    const int64_t tk = t[k].item<int64_t>();
    const auto s = method.step(model, schedule, target, dev(x_in[k]), tk, prev[k].item<int64_t>(),
                               lr[k].item<double>(), coef[k].item<double>(), counter);
    r.x_opt_error = std::max(r.x_opt_error, max_abs(s.x_opt, x_opt[k]));
    r.x_prev_error = std::max(r.x_prev_error, max_abs(s.x_prev, traj[k]));
    r.pred_x0_error =
        std::max(r.pred_x0_error, max_abs(s.pred_x0, pred[k]) * std::sqrt(schedule.alpha_bar(tk)));
    r.forwards += counter.forwards;
    r.backwards += counter.backwards;
    r.reference_forwards += ref_forwards[k].item<int64_t>();
    r.reference_backwards += c.params.G;  // the reference: one backward per gradient step
    backtracks += s.backtracks;
    ++r.steps_checked;
  }
}

/// The whole run from the recorded x_T, time-travel noise replayed.
void check_end_to_end(const RecordedCase& c, Denoiser& model, const VerifyOptions& o,
                      VerifyResult& r) {
  CoPaint method(c.params);
  std::vector<CoPaintStepResult> trace;
  method.trace = &trace;
  InpaintInput input;
  const at::Tensor x_T = c.get("x_T").to(o.device);
  input.image = c.get("image").to(o.device).expand_as(x_T).contiguous();
  input.mask = c.get("mask").to(o.device);
  input.x_T = x_T;
  int64_t undo_index = 0;
  if (c.has("undo_noise")) {
    const at::Tensor undo = c.get("undo_noise"), undo_t = c.get("undo_t");
    input.noise = [&, undo, undo_t](const std::string& purpose, int64_t t, const at::Tensor& like) {
      if (purpose != "undo" || undo_index >= undo.size(0) ||
          undo_t[undo_index].item<int64_t>() != t) {
        throw InputError(c.name + ": the recording has no " + purpose + " noise for t=" +
                         std::to_string(t) + " at draw " + std::to_string(undo_index));
      }
      return undo[undo_index++].to(like.device());
    };
  }
  const InpaintOutput out = method.run(model, input);
  const at::Tensor traj = c.get("trajectory");
  if (static_cast<int64_t>(trace.size()) != traj.size(0)) {
    r.failure = "end to end: " + std::to_string(trace.size()) + " step calls, the reference made " +
                std::to_string(traj.size(0));
    return;
  }
  for (size_t k = 0; k < trace.size(); ++k) {
    r.trajectory_error = std::max(r.trajectory_error, max_abs(trace[k].x_prev, traj[k]));
  }
  r.sample_error = max_abs(out.sample, c.get("sample"));
  r.end_to_end = true;
}

/// A baseline recording: every call from the reference's inputs, then the whole run from x_T.
VerifyResult verify_baseline(const std::string& json_path, const VerifyOptions& o) {
  const BaselineRecording rec = load_baseline_recording(json_path);
  const BaselineCase c = baseline_case(rec);
  register_builtin_methods();
  const auto method = Registry<Method>::global().create(c.method, c.settings);
  Denoiser& model = model_for(rec.model_path, rec.model_config_path, o.device);
  VerifyResult r;
  r.name = rec.name;
  r.method = c.method;
  r.has_x_opt = false;
  r.tolerance = o.tolerance > 0 ? o.tolerance : default_tolerance(o.device);
  const BaselineErrors steps = replay_baseline(rec, c, *method, model, true, o.device);
  r.steps_checked = steps.calls;
  r.x_prev_error = steps.out;
  r.pred_x0_error = steps.x0;
  std::vector<std::string> problems = steps.problems;
  int64_t mismatches = steps.index_mismatches;
  double extra = steps.extra, norm = steps.norm;
  if (o.end_to_end) {
    const BaselineErrors run = replay_baseline(rec, c, *method, model, false, o.device);
    r.end_to_end = true;
    r.sample_error = run.sample;
    r.trajectory_error = std::max(run.out, run.x_in);
    r.forwards = run.evals.forwards / c.particles;
    r.backwards = run.evals.backwards;
    problems.insert(problems.end(), run.problems.begin(), run.problems.end());
    mismatches += run.index_mismatches;
    if (run.unused_required > 0) {
      problems.push_back(std::to_string(run.unused_required) + " recorded draws not replayed");
    }
  } else {
    r.forwards = steps.evals.forwards / c.particles;
    r.backwards = steps.evals.backwards;
  }
  r.reference_forwards = rec.json.at("unet_forward").get<int64_t>();
  r.reference_backwards = rec.json.at("unet_backward").get<int64_t>();
  if (!problems.empty()) {
    r.failure = problems.front();
  } else if (mismatches > 0) {
    r.failure = std::to_string(mismatches) + " resampling index mismatches";
  } else if (rec.has("dps_grad") && (extra > 10 * r.tolerance || norm > r.tolerance / 10)) {
    r.failure = "dps gradient or norm off the reference's";
  } else if (r.forwards != r.reference_forwards || r.backwards != r.reference_backwards) {
    // A baseline spends exactly the reference's network calls (resample: batched calls).
    r.failure = "UNet forwards/backwards " + std::to_string(r.forwards) + "/" +
                std::to_string(r.backwards) + ", the reference's " +
                std::to_string(r.reference_forwards) + "/" + std::to_string(r.reference_backwards);
  }
  return r;
}

std::string format_error(double e) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2g", e);
  return buf;
}

}  // namespace

double default_tolerance(const c10::Device& device) { return device.is_cuda() ? 1e-3 : 1e-4; }

at::Tensor RecordedCase::get(const std::string& key) const {
  const auto& dict = data.toGenericDict();
  if (!dict.contains(key)) throw InputError(name + ".pt has no '" + key + "' entry");
  return dict.at(key).toTensor();
}

bool RecordedCase::has(const std::string& key) const { return data.toGenericDict().contains(key); }

RecordedCase load_recorded_case(const std::string& json_path) {
  const fs::path json(json_path);
  RecordedCase c;
  c.name = json.stem().string();
  const nlohmann::json j = read_json(json_path);
  const fs::path root = fs::absolute(json).parent_path().parent_path();
  try {
    c.model_path = (root / j.at("model").get<std::string>()).string();
    c.model_config_path = (root / j.at("model_config").get<std::string>()).string();
    c.params = copaint_params_from_reference_config(j.at("config"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError("'" + json_path + "' is not a recorded CoPaint case: " + e.what());
  }
  fs::path pt = json;
  pt.replace_extension(".pt");
  c.data = read_pickled_dict(pt.string());
  return c;
}

VerifyResult verify_case(const std::string& json_path, const VerifyOptions& options) {
  VerifyResult r;
  if (is_baseline_recording(read_json(json_path))) {
    r = verify_baseline(json_path, options);
  } else {
    const RecordedCase c = load_recorded_case(json_path);
    r.name = c.name;
    r.tolerance = options.tolerance > 0 ? options.tolerance : default_tolerance(options.device);
    Denoiser& model = model_for(c.model_path, c.model_config_path, options.device);
    int64_t backtracks = 0;
    check_steps(c, model, options, r, backtracks);
    if (options.end_to_end && backtracks == 0) check_end_to_end(c, model, options, r);
  }
  const double step_error = std::max({r.x_opt_error, r.x_prev_error, r.pred_x0_error});
  if (!r.failure.empty()) {
  } else if (step_error > r.tolerance) {
    r.failure = "per-step error " + format_error(step_error) + " > " + format_error(r.tolerance);
  } else if (r.end_to_end && std::max(r.sample_error, r.trajectory_error) > r.tolerance) {
    r.failure = "end-to-end error " + format_error(std::max(r.sample_error, r.trajectory_error)) +
                " > " + format_error(r.tolerance);
  } else if (r.forwards > r.reference_forwards) {
    r.failure = "more UNet forwards than the reference";
  }
  r.passed = r.failure.empty();
  return r;
}

std::vector<std::string> shipped_cases() {
  const char* env = std::getenv("COPAINT_VERIFY_DIR");
  const fs::path root(COPAINT_SHIPPED_FIXTURES_DIR);
  const std::vector<fs::path> dirs =
      env ? std::vector<fs::path>{fs::path(env)}
          : std::vector<fs::path>{root / "copaint", root / "baselines"};
  std::vector<std::string> out;
  for (const auto& dir : dirs) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      // Each case is a .json beside its .pt (reference_failures.json is a note, not a case).
      fs::path pt = e.path();
      pt.replace_extension(".pt");
      if (e.path().extension() == ".json" && fs::exists(pt)) found.push_back(e.path().string());
    }
    if (found.empty()) throw InputError("no recorded cases (*.json) in '" + dir.string() + "'");
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

std::string verify_table(const std::vector<VerifyResult>& results) {
  std::ostringstream os;
  os << "| case | steps | x_opt | x_prev | pred_x0*sqrt(ab) | sample | trajectory | forwards "
        "(reference) | tolerance | result |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
  int passed = 0;
  for (const auto& r : results) {
    passed += r.passed ? 1 : 0;
    os << "| " << r.name << " | " << r.steps_checked << " | "
       << (r.has_x_opt ? format_error(r.x_opt_error) : "-") << " | " << format_error(r.x_prev_error)
       << " | " << format_error(r.pred_x0_error) << " | "
       << (r.end_to_end ? format_error(r.sample_error) : "per step only") << " | "
       << (r.end_to_end ? format_error(r.trajectory_error) : "-") << " | " << r.forwards << " ("
       << r.reference_forwards << ") | " << format_error(r.tolerance) << " | "
       << (r.passed ? "ok" : "FAIL: " + r.failure) << " |\n";
  }
  os << "\n" << passed << " passed, " << results.size() - passed << " failed\n";
  return os.str();
}

std::string verify_json(const std::vector<VerifyResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json j = {{"case", r.name},
                        {"method", r.method},
                        {"steps_checked", r.steps_checked},
                        {"x_opt_error", r.x_opt_error},
                        {"x_prev_error", r.x_prev_error},
                        {"pred_x0_error", r.pred_x0_error},
                        {"end_to_end", r.end_to_end},
                        {"forwards", r.forwards},
                        {"reference_forwards", r.reference_forwards},
                        {"backwards", r.backwards},
                        {"reference_backwards", r.reference_backwards},
                        {"tolerance", r.tolerance},
                        {"passed", r.passed},
                        {"failure", r.failure}};
    if (r.end_to_end) {
      j["sample_error"] = r.sample_error;
      j["trajectory_error"] = r.trajectory_error;
    }
    out.push_back(j);
  }
  return out.dump(2);
}

}  // namespace copaint
