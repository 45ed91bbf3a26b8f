// `verify`: argument parsing, the per-case loop with progress, table and JSON output.
#include "methods/verify/verify_command.h"

#include <chrono>
#include <fstream>
#include <iostream>

#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/torch_compat.h"
#include "methods/verify/verify.h"

namespace copaint {

const char* const kVerifyHelp =
    "copaint verify [options] [CASE.json ...]\n"
    "Replays recorded runs of the reference implementation (UCSB-NLP-Chang/CoPaint) and prints,\n"
    "per case, the max per-step and end-to-end error and the UNet forwards against the\n"
    "reference's. No CASE: the recordings shipped in tests/fixtures/copaint (CoPaint) and\n"
    "tests/fixtures/baselines (blended, resample, repaint, ddnm, ddrm, dps; COPAINT_VERIFY_DIR\n"
    "overrides both), inpainting and super-resolution (mode and scale read from each recording).\n"
    "Every setting a recording carries is replayed (the reference's names mapped as by\n"
    "import-config); one that cannot be mapped is refused, naming it. Exit 0 when every case is\n"
    "within tolerance, 1 otherwise.\n"
    "Options:\n"
    "  --tolerance X   max abs error allowed (default 1e-4 on the CPU, 1e-3 on CUDA)\n"
    "  --stride N      check every N-th recorded step (default 1: all)\n"
    "  --steps-only    skip the end-to-end runs\n"
    "  --json FILE     also write the results as JSON\n"
    "  -h, --help      this help\n"
    "The device is the global --device (auto|cpu|cuda|cuda:N).\n";

namespace {

double parse_number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(flag + " needs a positive number, got '" + text + "'");
}

}  // namespace

int run_verify(const std::vector<std::string>& args, const std::string& device_spec,
               std::ostream& out) {
  VerifyOptions options;
  std::string json_path;
  std::vector<std::string> cases;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(a + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      out << kVerifyHelp;
      return 0;
    } else if (a == "--tolerance") {
      options.tolerance = parse_number(a, value());
    } else if (a == "--stride") {
      options.step_stride = static_cast<int64_t>(parse_number(a, value()));
    } else if (a == "--steps-only") {
      options.end_to_end = false;
    } else if (a == "--json") {
      json_path = value();
    } else if (!a.empty() && a[0] == '-') {
      throw UsageError("unknown option '" + a + "' for verify (see verify --help)");
    } else {
      cases.push_back(a);
    }
  }
  options.device = parse_device(device_spec);
  if (cases.empty()) cases = shipped_cases();
  out << "verify: " << cases.size() << " recorded case(s) on " << describe_device(options.device)
      << (cuda_built() ? ", CUDA " + cuda_build_version() + " build" : ", CPU build") << "\n";
  std::vector<VerifyResult> results;
  for (const auto& path : cases) {
    const auto start = std::chrono::steady_clock::now();
    results.push_back(verify_case(path, options));
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "verify: " << results.back().name << " " << (results.back().passed ? "ok" : "FAIL")
              << " (" << static_cast<int>(s * 10) / 10.0 << " s)\n";
  }
  out << verify_table(results);
  if (!json_path.empty()) {
    std::ofstream f(json_path);
    f << verify_json(results) << "\n";
    if (!f.flush()) throw InputError("cannot write '" + json_path + "'");
  }
  for (const auto& r : results) {
    if (!r.passed) return 1;
  }
  return 0;
}

}  // namespace copaint
