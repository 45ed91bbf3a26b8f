// RePaint: the jump schedule against the reference's, DDPM posterior coefficients and variance
// choices, known-region injection before every step but the first, counts, determinism and batch
// independence on the analytic Gaussian model.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "framework/core/registry.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "methods/repaint.h"
#include "tests/methods/gaussian_problem.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;
using testing_baselines::NoiseRecorder;
using testing_baselines::RecordingDenoiser;
using testing_baselines::TwoChannelDenoiser;

RePaintParams small_params() {
  RePaintParams p;
  p.respacing = "50";
  p.jump_length = 5;
  p.jump_n_sample = 3;
  return p;
}

TEST(RePaint, DefaultScheduleIsTheReferenceJumpSchedule) {
  const std::string path = std::string(COPAINT_TEST_FIXTURES_DIR) + "/schedule/schedules.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << "committed fixture missing: " << path;
  std::ifstream in(path);
  const auto fx = nlohmann::json::parse(in)["repaint_schedule_jump"];
  const RePaint defaults{RePaintParams{}};
  EXPECT_EQ(defaults.times(250), fx["250_1_10_10"].get<std::vector<int64_t>>());
  EXPECT_EQ(RePaint(small_params()).times(50), fx["50_1_5_3"].get<std::vector<int64_t>>());
  const auto list = defaults.times(250);
  int64_t down = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) down += list[k + 1] < list[k];
  EXPECT_EQ(defaults.expected_forwards(1000), down);
  EXPECT_GT(down, 1000);  // 250 steps plus 9 revisits of 10 steps at every jump point
}

// If x_t is exactly sqrt(ab_t) x0, the posterior mean is exactly sqrt(ab_{t-1}) x0 (identity of
// the posterior coefficients); the learned range spans log posterior variance .. log beta.
TEST(RePaint, PosteriorCoefficientsAndVariances) {
  const auto s = DiffusionSchedule::linear(1000).respaced("50");
  const auto k = DdpmCoefficients::from_schedule(s);
  for (int64_t t = 1; t < s.size(); ++t) {
    EXPECT_NEAR(
        k.posterior_mean_coef1[t] + k.posterior_mean_coef2[t] * std::sqrt(s.alphas_cumprod[t]),
        std::sqrt(s.alphas_cumprod[t - 1]), 1e-12);
    EXPECT_LT(k.posterior_variance[t], s.betas[t]);
  }
  EXPECT_DOUBLE_EQ(k.posterior_log_variance_clipped[0], std::log(k.posterior_variance[1]));
  const at::Tensor x = at::randn({2, 1, 4, 4}, at::kFloat);
  const at::Tensor t = at::full({2}, 7, at::kLong);
  ModelOutput out;
  out.eps = at::zeros_like(x);
  out.var_values = at::full_like(x, -1.0);
  auto lo = p_mean_variance(s, k, x, t, out, VarianceType::kLearnedRange, true);
  EXPECT_NEAR(lo.log_variance.max().item<double>(), k.posterior_log_variance_clipped[7], 1e-6);
  out.var_values = at::full_like(x, 1.0);
  auto hi = p_mean_variance(s, k, x, t, out, VarianceType::kLearnedRange, true);
  EXPECT_NEAR(hi.log_variance.min().item<double>(), std::log(s.betas[7]), 1e-6);
  auto small = p_mean_variance(s, k, x, t, out, VarianceType::kFixedSmall, true);
  auto large = p_mean_variance(s, k, x, t, out, VarianceType::kFixedLarge, true);
  EXPECT_NEAR(small.log_variance.max().item<double>(), k.posterior_log_variance_clipped[7], 1e-6);
  EXPECT_NEAR(large.log_variance.max().item<double>(), std::log(s.betas[7]), 1e-6);
  EXPECT_EQ(max_abs(lo.mean, hi.mean), 0.0);
  out.var_values = at::Tensor();
  EXPECT_THROW(p_mean_variance(s, k, x, t, out, VarianceType::kLearnedRange, true), UsageError);
}

// The known region of every network input but the first is sqrt(ab_t) image + sqrt(1 - ab_t) z
// with the "inject" noise z; the first is the initial noise itself. Re-noising draws "undo".
TEST(RePaint, InjectsTheNoisedReferenceBeforeEveryStepButTheFirst) {
  GaussianProblem prob;
  RePaint method(small_params());
  RecordingDenoiser rec(*prob.model);
  NoiseRecorder noise;
  InpaintInput in = prob.input({3});
  in.x_T = at::randn_like(in.image);
  noise.attach(in);
  const InpaintOutput out = method.run(rec, in);
  const auto schedule = DiffusionSchedule::linear(1000).respaced("50");
  const auto list = method.times(50);
  EXPECT_EQ(out.evals.forwards, method.expected_forwards(1000));
  EXPECT_EQ(static_cast<int64_t>(rec.inputs.size()), out.evals.forwards);
  EXPECT_EQ(max_abs(rec.inputs[0], in.x_T), 0.0);
  EXPECT_EQ(noise.count("inject"), out.evals.forwards - 1);
  EXPECT_EQ(noise.count("step"), out.evals.forwards);
  EXPECT_EQ(noise.count("undo") + out.evals.forwards, static_cast<int64_t>(list.size()) - 1);
  // Replay the inject draws in order against the recorded inputs.
  std::vector<at::Tensor> injects;
  for (size_t i = 0; i < noise.draws.size(); ++i) {
    if (noise.purposes[i] == "inject") injects.push_back(noise.draws[i]);
  }
  double err = 0;
  size_t forward = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) {
    if (list[k + 1] > list[k]) continue;
    if (forward > 0) {
      const at::Tensor ab =
          extract(schedule.alphas_cumprod, batch_steps(list[k], in.image), in.image);
      const at::Tensor known = at::sqrt(ab) * in.image + at::sqrt(1 - ab) * injects[forward - 1];
      err = std::max(err, max_abs(rec.inputs[forward] * prob.mask, known * prob.mask));
    }
    EXPECT_EQ(rec.steps[forward], schedule.timestep_map[list[k]]);
    ++forward;
  }
  EXPECT_LE(err, 1e-6);
  EXPECT_LT(masked_mae(out.sample, in.image, prob.mask), 0.05);
}

TEST(RePaint, DeterministicAndIndependentOfBatch) {
  GaussianProblem prob;
  RePaint method(small_params());
  const at::Tensor a = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = method.run(*prob.model, prob.input({2})).sample;
  EXPECT_EQ(max_abs(a, b), 0.0);
  EXPECT_LE(max_abs(a[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(a[0], a[1]), 1e-2);
}

// auto uses the variance channels when the network has them; a C-channel network cannot run
// learned_range; fixed small and large give different samples.
TEST(RePaint, VarianceChoices) {
  GaussianProblem prob;
  RePaintParams p = small_params();
  p.jump_length = 1;
  p.jump_n_sample = 1;
  auto run = [&](Denoiser& model, const std::string& variance) {
    RePaintParams q = p;
    q.variance = parse_variance_type(variance, "variance");
    return RePaint(q).run(model, prob.input({9})).sample;
  };
  TwoChannelDenoiser lo(*prob.model, -1.0);
  EXPECT_EQ(max_abs(run(lo, "auto"), run(lo, "learned_range")), 0.0);
  EXPECT_LE(max_abs(run(lo, "learned_range"), run(*prob.model, "fixed_small")), 1e-5);
  TwoChannelDenoiser hi(*prob.model, 1.0);
  EXPECT_LE(max_abs(run(hi, "learned_range"), run(*prob.model, "fixed_large")), 1e-5);
  EXPECT_GT(max_abs(run(*prob.model, "fixed_small"), run(*prob.model, "fixed_large")), 1e-3);
  EXPECT_THROW(run(*prob.model, "learned_range"), UsageError);
}

TEST(RePaint, Registered) {
  Registry<Method> reg;
  register_repaint_method(reg);
  auto m = reg.create("repaint");
  auto* r = dynamic_cast<RePaint*>(m.get());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->params().jump_length, 10);
  EXPECT_EQ(r->params().jump_n_sample, 10);
  EXPECT_THROW(reg.create("repaint", Options{{"variance", "huge"}}), UsageError);
  EXPECT_THROW(
      reg.create("repaint", Options{{"respacing", "100"}, {"t_T", "250"}})->expected_forwards(1000),
      UsageError);
}

}  // namespace
}  // namespace copaint
