// Replays the reference's recorded baseline runs (the format of tests/fixtures/baselines: ddim =
// our blended, resample, repaint, ddnm, ddrm, dps): the recording, its random draws by role, how
// each method's draw requests map onto them, and one run (per step or end to end) with its errors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "framework/core/options.h"
#include "framework/diffusion/model.h"
#include "methods/method.h"

namespace copaint {

/// One recorded reference run: `<case>.json` (settings, draws, counts) and `<case>.pt` (tensors).
struct BaselineRecording {
  std::string name;               ///< file stem, e.g. "ddim_half"
  std::string method;             ///< the reference's sampler name ("ddim", "resample", ...)
  std::string model_path;         ///< the checkpoint it ran on
  std::string model_config_path;  ///< its architecture (JSON with a "config" object)
  nlohmann::json json;
  c10::IValue dict;

  bool has(const std::string& key) const;
  at::Tensor get(const std::string& key) const;  ///< InputError naming the key when absent
  std::vector<at::Tensor> tensors(const std::string& key) const;
  std::vector<std::string> strings(const std::string& key) const;
  int64_t steps() const { return get("x_in").size(0); }  ///< network calls recorded
};

/// Whether a recording's JSON is a baseline run (it names its reference sampler).
bool is_baseline_recording(const nlohmann::json& json);

/// Reads `<name>.json` and `<name>.pt`; model paths in the JSON are relative to the folder above
/// (the fixtures root). InputError names a missing or malformed file.
BaselineRecording load_baseline_recording(const std::string& json_path);

/// The recorded draws by role (the recording's role up to " ("), served in call order.
class DrawReplay {
 public:
  struct Draw {
    at::Tensor value;
    int64_t step = -1, t = -1;
    bool used = false;
  };
  explicit DrawReplay(const BaselineRecording& recording);
  /// The next unused draw of `role` satisfying `pick`; null (and a problem noted) when none.
  const Draw* next(const std::string& role, const std::function<bool(const Draw&)>& pick = {});
  int64_t unused(const std::string& role) const;  ///< draws of `role` never served
  int64_t served() const { return served_; }
  int64_t recorded() const { return recorded_; }
  void note(const std::string& problem) { problems_.push_back(problem); }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::map<std::string, std::vector<Draw>> draws_;
  int64_t served_ = 0, recorded_ = 0;
  std::vector<std::string> problems_;
};

/// Answers a method's draw request from the recording (undefined: draw from the generators).
using DrawMapper = std::function<at::Tensor(DrawReplay&, const DrawRequest&)>;

/// How to run one recording with our code: the method with the reference's settings (the
/// options that restore the reference where our default differs on purpose) and the draw mapping.
struct BaselineCase {
  std::string name;
  std::string method;  ///< our registry name
  Options settings;
  DrawMapper map;
  int64_t particles = 1;  ///< resample: the recorded batch is one sample's particles
  /// Roles every draw of which the run must replay (the others are multiplied by 0 or unused in
  /// the reference, or never visited).
  std::vector<std::string> required_roles;
};

/// The case for a recording: every key of its JSON settings through methods/reference_config.h
/// (the table import-config uses; mode and scale included), plus the options that restore the
/// reference where our default differs on purpose. InputError, naming the key, for a setting it
/// cannot map, and for an unknown sampler.
BaselineCase baseline_case(const BaselineRecording& recording);

/// Max errors of one run against the recording (max abs over every call and element).
struct BaselineErrors {
  double x0 = 0;      ///< pred_x0, scaled by sqrt(alpha_bar_t) (the reference divides by it)
  double x0_raw = 0;  ///< pred_x0 unscaled
  double out = 0;     ///< each step's x_{t-1}
  double eps = 0;     ///< network output
  double x_in = 0;    ///< the state handed to each step
  double extra = 0;   ///< resample weights, dps gradient
  double norm = 0;    ///< dps norm (relative)
  double sample = 0;  ///< final sample
  int64_t calls = 0, index_mismatches = 0;
  int64_t served = 0, recorded = 0;  ///< draws replayed, draws in the recording
  int64_t unused_required = 0;       ///< draws of BaselineCase::required_roles left unused
  EvalCounter evals;
  std::vector<std::string> problems;  ///< structural mismatches (missing draws, wrong t, calls)
};

/// Runs `method` on `model` against the recording on `device`, every draw offered to the case's
/// mapping. per_step: each network call starts from the reference's own input; otherwise the
/// whole run from the recorded x_T.
BaselineErrors replay_baseline(const BaselineRecording& recording, const BaselineCase& c,
                               Method& method, Denoiser& model, bool per_step,
                               const c10::Device& device);

}  // namespace copaint
