// Blended (replacement DDIM) on the analytic Gaussian model: determinism, batch independence,
// the known region of every network input, evaluation counts, registration.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "framework/core/registry.h"
#include "framework/diffusion/diffusion.h"
#include "framework/diffusion/schedule.h"
#include "methods/replacement.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;
using testing_baselines::NoiseRecorder;
using testing_baselines::RecordingDenoiser;

BlendedParams small_params() {
  BlendedParams p;
  p.respacing = "50";
  return p;
}

TEST(Blended, DeterministicAndIndependentOfBatch) {
  GaussianProblem prob;
  Blended method(small_params());
  const at::Tensor a = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = method.run(*prob.model, prob.input({2})).sample;
  EXPECT_EQ(max_abs(a, b), 0.0);
  EXPECT_LE(max_abs(a[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(a[0], a[1]), 1e-2);  // different seeds, different unknown regions
}

/// alpha_bar of guided-diffusion's linear 1000-step process (betas 1e-4 .. 0.02) respaced to 50
/// steps (kept indices round(i * 999 / 49)), and those indices, computed here from the formulas
/// rather than by the schedule code under test.
std::pair<std::vector<double>, std::vector<int64_t>> respaced_50() {
  std::vector<double> all(1000);
  double prod = 1;
  for (int i = 0; i < 1000; ++i) {
    prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
    all[static_cast<size_t>(i)] = prod;
  }
  std::vector<double> ab;
  std::vector<int64_t> kept;
  for (int i = 0; i < 50; ++i) {
    kept.push_back(std::llround(i * 999.0 / 49.0));
    ab.push_back(all[static_cast<size_t>(kept.back())]);
  }
  return {ab, kept};
}

// Before every step the known region of x_t is the reference noised to that step with the
// "forward" noise (sqrt(ab) x0 + sqrt(1 - ab) z); one forward per step.
TEST(Blended, KnownRegionOfEveryNetworkInputIsTheNoisedReference) {
  GaussianProblem prob;
  Blended method(small_params());
  RecordingDenoiser rec(*prob.model);
  NoiseRecorder noise;
  InpaintInput in = prob.input({5});
  noise.attach(in);
  const InpaintOutput out = method.run(rec, in);
  const auto [ab, kept] = respaced_50();
  const std::vector<int64_t> steps = ddim_timesteps(50, 50);
  ASSERT_EQ(static_cast<int64_t>(rec.inputs.size()), static_cast<int64_t>(steps.size()) - 1);
  EXPECT_EQ(out.evals.forwards, static_cast<int64_t>(steps.size()) - 1);
  EXPECT_EQ(out.evals.backwards, 0);
  EXPECT_EQ(method.expected_forwards(1000), 49);
  EXPECT_EQ(Blended(BlendedParams{}).expected_forwards(1000), 249);  // paper default: 250 over 250
  EXPECT_EQ(noise.count("forward"), static_cast<int64_t>(steps.size()) - 1);
  EXPECT_EQ(noise.count("ddim"), 0);  // eta = 0 draws nothing
  double err = 0;
  for (size_t k = 0; k + 1 < steps.size(); ++k) {
    const double a = ab[static_cast<size_t>(steps[k])];
    const at::Tensor expected = in.image.to(at::kDouble) * std::sqrt(a) +
                                noise.get("forward", steps[k]).to(at::kDouble) * std::sqrt(1 - a);
    err = std::max(err, max_abs(rec.inputs[k] * prob.mask, expected * prob.mask));
    EXPECT_EQ(rec.steps[k], kept[static_cast<size_t>(steps[k])]);
  }
  EXPECT_LE(err, 1e-6);
  // The last step starts from a nearly clean known region (noise level sqrt(1 - ab) = 0.08 at
  // respaced step 1 of 50): the output's known region is close to the reference, far closer than
  // an unconditional run's.
  InpaintInput uncond = prob.input({5});
  uncond.mask = at::zeros_like(prob.mask);
  const double known = masked_mae(out.sample, in.image, prob.mask);
  const double free = masked_mae(method.run(*prob.model, uncond).sample, in.image, prob.mask);
  EXPECT_LT(known, 0.1);
  EXPECT_GT(free, 4 * known);
}

TEST(Blended, EtaDrawsStepNoise) {
  GaussianProblem prob;
  BlendedParams p = small_params();
  p.eta = 1.0;
  NoiseRecorder noise;
  InpaintInput in = prob.input({5});
  noise.attach(in);
  Blended(p).run(*prob.model, in);
  EXPECT_EQ(noise.count("ddim"), 49);
}

TEST(Blended, Registered) {
  Registry<Method> reg;
  register_replacement_methods(reg);
  auto m = reg.create("blended", Options{{"respacing", "50"}, {"steps", "10"}});
  auto* b = dynamic_cast<Blended*>(m.get());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->params().steps, 10);
  EXPECT_EQ(b->expected_forwards(1000), 9);
  EXPECT_THROW(reg.create("blended", Options{{"schedule_type", "cubic"}}), UsageError);
  EXPECT_THROW(reg.create("blended", Options{{"steps", "500"}})->expected_forwards(1000),
               UsageError);
}

}  // namespace
}  // namespace copaint
