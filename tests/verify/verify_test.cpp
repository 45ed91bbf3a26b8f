// Tests of methods/verify: the shipped reference recordings replay within tolerance on the CPU,
// a tolerance below the errors fails, bad input is an InputError, and the command's exit codes.
#include "methods/verify/verify.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "framework/core/error.h"
#include "methods/verify/verify_command.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kCases = std::string(COPAINT_TEST_FIXTURES_DIR) + "/copaint/";

TEST(Verify, ShipsTheRecordedCoPaintAndBaselineCases) {
  const auto cases = shipped_cases();
  ASSERT_EQ(cases.size(), 19u);  // 8 CoPaint, 11 baseline recordings (4 in super-resolution)
  EXPECT_NE(cases.front().find("copaint_backtrack.json"), std::string::npos);
  EXPECT_NE(cases[8].find("baselines/ddim_half.json"), std::string::npos);
  for (const char* sr : {"copaint/copaint_sr2.json", "baselines/ddnm_sr2.json",
                         "baselines/ddrm_sr2.json", "baselines/dps_sr2.json"}) {
    EXPECT_EQ(std::count_if(cases.begin(), cases.end(),
                            [&](const std::string& c) { return c.find(sr) != std::string::npos; }),
              1)
        << sr;
  }
  for (const auto& c : cases) EXPECT_EQ(c.find("reference_failures"), std::string::npos) << c;
}

// Per step on every CoPaint case, end to end on two (one batch, one time travel): the methods
// suite runs every case end to end (CoPaintParity.EndToEnd), so repeating all of them here would
// double the suite's most expensive runs without checking anything more of verify's own code.
TEST(Verify, EveryShippedCasePassesOnTheCpu) {
  for (const auto& path : shipped_cases()) {
    if (path.find("/baselines/") != std::string::npos) continue;  // BaselineCasesPass...
    VerifyOptions o;
    o.step_stride = 4;
    o.end_to_end = path.find("copaint_g2_n1.json") != std::string::npos ||
                   path.find("copaint_tt_j10.json") != std::string::npos;
    const VerifyResult r = verify_case(path, o);
    EXPECT_TRUE(r.passed) << r.name << ": " << r.failure;
    EXPECT_GT(r.steps_checked, 5) << r.name;
    EXPECT_LE(std::max({r.x_opt_error, r.x_prev_error, r.pred_x0_error}), 1e-4) << r.name;
    EXPECT_LE(r.forwards, r.reference_forwards) << r.name;
    EXPECT_EQ(r.backwards, r.reference_backwards) << r.name;
    // The backtracking case is per step only (its reference decisions hinge on near-ties).
    EXPECT_EQ(r.end_to_end, o.end_to_end && r.name != "copaint_backtrack") << r.name;
    if (r.end_to_end) EXPECT_LE(std::max(r.sample_error, r.trajectory_error), 1e-4) << r.name;
    EXPECT_DOUBLE_EQ(r.tolerance, 1e-4);
  }
}

// Baseline recordings replay through the command's library within tolerance, per step and end
// to end, with exactly the reference's forwards (resample: batched calls) and backwards (dps).
// The cases with the most mapping (particles, DDRM's vector order in both modes, DPS's gradient
// in both modes); the methods suite replays all eleven through the same code.
TEST(Verify, BaselineCasesPassOnTheCpu) {
  int64_t baselines = 0;
  for (const auto& path : shipped_cases()) {
    if (path.find("/baselines/") == std::string::npos) continue;
    ++baselines;
    if (path.find("resample_half_p4") == std::string::npos &&
        path.find("ddrm_") == std::string::npos && path.find("dps_") == std::string::npos) {
      continue;
    }
    const VerifyResult r = verify_case(path, {});
    EXPECT_TRUE(r.passed) << r.name << ": " << r.failure;
    EXPECT_NE(r.method, "copaint") << r.name;
    EXPECT_FALSE(r.has_x_opt);
    EXPECT_TRUE(r.end_to_end);
    EXPECT_GT(r.steps_checked, 5) << r.name;
    EXPECT_LE(std::max({r.x_prev_error, r.pred_x0_error, r.sample_error, r.trajectory_error}), 1e-4)
        << r.name;
    EXPECT_GT(r.pred_x0_error, 0) << r.name << ": nothing compared";
    EXPECT_EQ(r.forwards, r.reference_forwards) << r.name;
    EXPECT_EQ(r.backwards, r.reference_backwards) << r.name;
  }
  EXPECT_EQ(baselines, 11);  // shipped
}

// A baseline case held to a tolerance below its float error fails, naming the error.
TEST(Verify, ABaselineToleranceBelowTheErrorFails) {
  VerifyOptions o;
  o.tolerance = 1e-12;
  const VerifyResult r =
      verify_case(std::string(COPAINT_TEST_FIXTURES_DIR) + "/baselines/ddnm_half.json", o);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.failure.find("error"), std::string::npos) << r.failure;
}

TEST(Verify, AToleranceBelowTheErrorFails) {
  VerifyOptions o;
  o.step_stride = 8;
  o.tolerance = 1e-12;
  o.end_to_end = false;  // the per-step errors (~1e-6) are already above it
  const VerifyResult r = verify_case(kCases + "copaint_tt_j10.json", o);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.failure.find("error"), std::string::npos) << r.failure;
}

TEST(Verify, MissingOrForeignFilesAreInputErrors) {
  EXPECT_THROW(verify_case(kCases + "no_such_case.json", {}), InputError);
  // A JSON that is not a recorded case (the fixture net's config).
  EXPECT_THROW(
      verify_case(std::string(COPAINT_TEST_FIXTURES_DIR) + "/unet/adm_tiny_config.json", {}),
      InputError);
}

TEST(Verify, CommandExitCodesAndTable) {
  std::ostringstream out;
  const std::string one = kCases + "copaint_ddim25_of50.json";
  EXPECT_EQ(run_verify({"--stride", "6", one}, "cpu", out), 0);
  EXPECT_NE(out.str().find("| copaint_ddim25_of50 |"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("1 passed, 0 failed"), std::string::npos) << out.str();
  std::ostringstream strict;
  EXPECT_EQ(run_verify({"--stride", "6", "--tolerance", "1e-12", one}, "cpu", strict), 1);
  EXPECT_NE(strict.str().find("0 passed, 1 failed"), std::string::npos) << strict.str();
  std::ostringstream help;
  EXPECT_EQ(run_verify({"--help"}, "cpu", help), 0);
  EXPECT_NE(help.str().find("--tolerance"), std::string::npos);
  EXPECT_THROW(run_verify({"--tolerance", "-1", one}, "cpu", out), UsageError);
  EXPECT_THROW(run_verify({"--bogus"}, "cpu", out), UsageError);
}

}  // namespace
}  // namespace copaint
