// Parity of the six baselines (blended = the reference's ddim, resample, repaint, ddnm, ddrm, dps)
// with the official implementation's recorded runs (tests/fixtures/baselines, see its README):
// every step from the reference's own input (x_in replaced before each network call), and the
// whole run from the recorded x_T, with every random draw replayed from the recording by role and
// step (DrawRequest). Run with the options that restore the reference where our default differs
// on purpose; the effect of each such default on the recorded case is printed too.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "framework/core/registry.h"
#include "framework/diffusion/diffusion.h"
#include "framework/diffusion/schedule.h"
#include "methods/ddnm.h"
#include "methods/ddrm.h"
#include "methods/dps.h"
#include "methods/repaint.h"
#include "methods/replacement.h"
#include "methods/verify/baseline_replay.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

std::unique_ptr<Method> create(const std::string& method, const Options& options) {
  register_builtin_methods();
  return Registry<Method>::global().create(method, options);
}

BaselineRecording load_recording(const std::string& name) {
  return load_baseline_recording(fixtures::kFixtures + "/baselines/" + name + ".json");
}

BaselineErrors run_case(const BaselineRecording& rec, const BaselineCase& c, bool per_step,
                        Method& method) {
  return replay_baseline(rec, c, method, fixtures::tiny_model(), per_step, c10::Device(c10::kCPU));
}

std::string joined(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += p + "; ";
  return out;
}

// Inpainting, then super-resolution (`*_sr2`: mode and scale read from the recording).
const std::vector<std::string> kCases = {
    "ddim_half", "resample_half_p4", "repaint_half", "repaint_expand", "ddnm_half", "ddnm_expand",
    "ddrm_half", "dps_half_n2",      "ddnm_sr2",     "ddrm_sr2",       "dps_sr2"};

class BaselineParity : public testing::TestWithParam<std::string> {};

TEST_P(BaselineParity, StepsFromReferenceInputs) {
  const BaselineRecording rec = load_recording(GetParam());
  const BaselineCase c = baseline_case(rec);
  const auto method = create(c.method, c.settings);
  const BaselineErrors e = run_case(rec, c, /*per_step=*/true, *method);
  EXPECT_TRUE(e.problems.empty()) << joined(e.problems);
  EXPECT_LE(e.x0, 1e-4) << "pred_x0 error scaled by sqrt(alpha_bar_t)";
  EXPECT_LE(e.out, 1e-4);
  EXPECT_EQ(e.index_mismatches, 0);
  if (rec.has("resample_p")) EXPECT_LE(e.extra, 1e-4) << "resample weights";
  if (rec.has("dps_grad")) {
    EXPECT_LE(e.extra, 1e-3) << "dps gradient";
    EXPECT_LE(e.norm, 1e-5) << "dps norm (relative)";
  }
  std::printf(
      "[%s] per step: pred_x0*sqrt(ab) %.3g (unscaled %.3g) x_prev %.3g eps %.3g%s %.3g "
      "index mismatches %lld\n",
      GetParam().c_str(), e.x0, e.x0_raw, e.out, e.eps, rec.has("dps_grad") ? " grad" : " weights",
      e.extra, static_cast<long long>(e.index_mismatches));
}

TEST_P(BaselineParity, EndToEnd) {
  const BaselineRecording rec = load_recording(GetParam());
  const BaselineCase c = baseline_case(rec);
  const auto method = create(c.method, c.settings);
  const BaselineErrors e = run_case(rec, c, /*per_step=*/false, *method);
  EXPECT_TRUE(e.problems.empty()) << joined(e.problems);
  EXPECT_LE(e.out, 1e-4) << "trajectory";
  EXPECT_LE(e.x_in, 1e-4) << "step inputs";
  EXPECT_LE(e.sample, 1e-4);
  EXPECT_EQ(e.index_mismatches, 0);
  EXPECT_EQ(e.unused_required, 0) << "recorded draws not replayed";
  const int64_t ref_forwards = rec.json["unet_forward"];
  const int64_t ref_backwards = rec.json["unet_backward"];
  // Resample counts one evaluation per particle; the reference's count is of batched calls.
  const int64_t calls = e.evals.forwards / c.particles;
  EXPECT_EQ(calls, ref_forwards);
  EXPECT_EQ(e.evals.forwards % c.particles, 0);
  EXPECT_EQ(e.evals.backwards, ref_backwards);
  EXPECT_EQ(method->expected_forwards(1000) / c.particles, ref_forwards);
  std::printf(
      "[%s] end to end: sample %.3g trajectory %.3g x_in %.3g; forwards %lld (%lld calls) "
      "backwards %lld, reference %lld / %lld; draws replayed %lld of %lld recorded\n",
      GetParam().c_str(), e.sample, e.out, e.x_in, static_cast<long long>(e.evals.forwards),
      static_cast<long long>(calls), static_cast<long long>(e.evals.backwards),
      static_cast<long long>(ref_forwards), static_cast<long long>(ref_backwards),
      static_cast<long long>(e.served), static_cast<long long>(e.recorded));
}

INSTANTIATE_TEST_SUITE_P(Baselines, BaselineParity, testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param; });

// Where our default differs from the reference on purpose, the recorded case run with the
// default (draws replayed where they exist) must differ, by how much is printed.
struct DefaultDifference {
  std::string case_name, method;
  Options defaults;  ///< the case's settings without the reference-restoring option
  std::string what;
};

TEST(BaselineDefaults, DeliberateDifferencesOnTheRecordings) {
  const std::vector<DefaultDifference> diffs = {
      {"resample_half_p4",
       "resample",
       {{"respacing", "10"},
        {"steps", "10"},
        {"particles", "4"},
        {"reference_last_weights", "true"}},
       "resample_pre_step=false (resample the stepped particles)"},
      {"resample_half_p4",
       "resample",
       {{"respacing", "10"}, {"steps", "10"}, {"particles", "4"}, {"resample_pre_step", "true"}},
       "reference_last_weights=false"},
      {"ddnm_half",
       "ddnm",
       {{"respacing", "25"}, {"t_T", "25"}, {"paper_update", "true"}},
       "paper_update=true (no gamma_t)"},
      {"ddrm_half",
       "ddrm",
       {{"respacing", "25"}, {"t_T", "25"}, {"eta", "0.85"}},
       "eta=0.85 (the DDRM paper's; its step noise from the generators)"},
      {"dps_half_n2",
       "dps",
       {{"respacing", "15"}, {"t_T", "15"}},
       "batch_norm=false (per-sample norm)"},
  };
  for (const auto& d : diffs) {
    const BaselineRecording rec = load_recording(d.case_name);
    BaselineCase c = baseline_case(rec);
    const auto method = create(d.method, d.defaults);
    // A different algorithm needs other draws: resampling draws, DDRM's eta noise and any draw
    // the recording lacks come from the generators.
    const DrawMapper inner = c.map;
    const bool ddrm = d.method == "ddrm";
    c.map = [inner, ddrm](DrawReplay& replay, const DrawRequest& r) -> at::Tensor {
      if (r.kind == DrawRequest::Kind::kMultinomial || (ddrm && r.role == "step")) {
        return at::Tensor();
      }
      return inner(replay, r);
    };
    // Mismatches inside (draw counts, indices: e.problems) are expected: only the numbers count.
    const BaselineErrors e = run_case(rec, c, /*per_step=*/false, *method);
    EXPECT_GT(e.sample, 1e-3) << d.case_name << ": " << d.what;
    std::printf("[%s] %s: final sample differs from the reference by %.3g (trajectory %.3g)\n",
                d.case_name.c_str(), d.what.c_str(), e.sample, e.out);
  }
}

// blended.share_forward_noise: the reference's one forward-noise draw for the whole batch (from
// sample 0's generator), so every sample's step sees the same noised known region; by default
// each sample draws its own.
TEST(BaselineDefaults, BlendedSharedForwardNoise) {
  const BaselineRecording rec = load_recording("ddim_half");
  for (const bool shared : {false, true}) {
    const auto method = create(
        "blended",
        {{"respacing", "25"}, {"steps", "5"}, {"share_forward_noise", shared ? "true" : "false"}});
    InpaintInput input;
    input.image = rec.get("image").expand({2, -1, -1, -1}).contiguous();
    input.mask = rec.get("mask");
    input.generators = {at::make_generator<at::CPUGeneratorImpl>(1),
                        at::make_generator<at::CPUGeneratorImpl>(2)};
    double known_gap = -1;
    StepHooks hooks;
    hooks.on_record = [&](const StepRecord& r) {
      if (r.call == 1) known_gap = max_abs(r.x_in[0] * input.mask[0], r.x_in[1] * input.mask[0]);
    };
    input.hooks = &hooks;
    method->run(fixtures::tiny_model(), input);
    if (shared) {
      EXPECT_EQ(known_gap, 0.0);
    } else {
      EXPECT_GT(known_gap, 1e-2);
    }
  }
}

// Every setting the reference hard-codes is an option with the reference's value as default.
TEST(BaselineDefaults, HardCodedReferenceSettingsAreOptionDefaults) {
  EXPECT_DOUBLE_EQ(DDNMParams{}.eta, 0.85);
  EXPECT_DOUBLE_EQ(DDNMParams{}.sigma_y, 0.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.eta_b, 1.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.eta, 0.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.sigma_0, 0.0);
  EXPECT_DOUBLE_EQ(DPSParams{}.step_size, 1.0);
  EXPECT_DOUBLE_EQ(DPSParams{}.eta, 1.0);
  EXPECT_DOUBLE_EQ(ResampleParams{}.temperature, 100.0);
  register_builtin_methods();
  for (const auto& [method, key] : std::vector<std::pair<std::string, std::string>>{
           {"ddnm", "eta"}, {"ddrm", "eta_b"}, {"dps", "step_size"}}) {
    EXPECT_NO_THROW(create(method, {{key, "0.5"}})) << method << "." << key;
  }
}

}  // namespace
}  // namespace copaint
