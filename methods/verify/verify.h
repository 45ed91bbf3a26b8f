// Replays recorded runs of the reference implementation (tests/fixtures/copaint/ for CoPaint,
// tests/fixtures/baselines/ for the six baselines: JSON settings + a .pt with inputs, every
// random draw and per-step records) on a chosen device and measures how far this build is from
// them. Behind `copaint verify`, copaint_verify and the GPU
// check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include "methods/copaint.h"

namespace copaint {

struct VerifyOptions {
  c10::Device device = c10::Device(c10::kCPU);
  /// Largest max-abs error on x_t (per step: x_opt, x_prev, pred_x0 scaled by sqrt(alpha_bar_t);
  /// end to end: sample, trajectory) a case may show and pass. <= 0: the device's default
  /// (default_tolerance).
  double tolerance = 0;
  /// Check every stride-th recorded step (the optimisations before a time-travel jump always).
  int64_t step_stride = 1;
  bool end_to_end = true;  ///< also run each stable case end to end from its recorded x_T
};

/// The parity tests' tolerance on the CPU (1e-4); 1e-3 on CUDA (TF32 off: cuDNN and cuBLAS
/// accumulate in another order).
double default_tolerance(const c10::Device& device);

/// One recorded reference run, loaded: its settings as our CoPaint parameters (batch-coupled, as
/// the reference) and its tensors.
struct RecordedCase {
  std::string name;               ///< file stem, e.g. "copaint_g2_n1"
  std::string model_path;         ///< the checkpoint it ran on
  std::string model_config_path;  ///< its architecture (JSON with a "config" object)
  CoPaintParams params;
  c10::IValue data;  ///< the .pt dict
  at::Tensor get(const std::string& key) const;
  bool has(const std::string& key) const;
};

/// Reads `<dir>/<name>.json` and `<dir>/<name>.pt`; paths inside the JSON are relative to the
/// folder above `dir` (the fixtures root). InputError names a missing or malformed file.
RecordedCase load_recorded_case(const std::string& json_path);

struct VerifyResult {
  std::string name;
  std::string method = "copaint";  ///< the method replayed (our registry name)
  bool has_x_opt = true;           ///< CoPaint's optimised x_t; the baselines have none
  int64_t steps_checked = 0;
  double x_opt_error = 0, x_prev_error = 0, pred_x0_error = 0;  ///< per step, max abs
  /// Whether the case ran end to end. Cases whose reference run backtracked are per step only:
  /// their accept/reject decisions hinge on near-ties (two reference runs diverge end to end).
  bool end_to_end = false;
  double sample_error = 0, trajectory_error = 0;
  int64_t forwards = 0, reference_forwards = 0;  ///< UNet forwards of the checked steps
  int64_t backwards = 0, reference_backwards = 0;
  double tolerance = 0;
  bool passed = false;
  std::string failure;  ///< why it failed, empty when passed
};

/// Replays one case on options.device. Throws InputError for unreadable files.
VerifyResult verify_case(const std::string& json_path, const VerifyOptions& options);

/// The recordings this project ships (tests/fixtures/copaint/*.json, then
/// tests/fixtures/baselines/*.json; provenance in tests/fixtures/README.md), each folder sorted;
/// COPAINT_VERIFY_DIR overrides the folders with one.
std::vector<std::string> shipped_cases();

/// A markdown table, one row per case, and a closing line "N passed, M failed".
std::string verify_table(const std::vector<VerifyResult>& results);
/// The same as a JSON array.
std::string verify_json(const std::vector<VerifyResult>& results);

}  // namespace copaint
