// DPS: one forward and one backward per step, the gradient pulls the known region toward the
// measurement, per-sample norms make samples independent of their batch, and the reference's
// batch-wide norm differs only for batches of more than one sample.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "framework/core/registry.h"
#include "methods/degradation.h"
#include "methods/dps.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;

DPSParams small_params() {
  DPSParams p;
  p.respacing = "50";
  return p;
}

TEST(DPS, CountsAndDeterminism) {
  GaussianProblem prob;
  DPS method(small_params());
  const InpaintOutput a = method.run(*prob.model, prob.input({1, 2}));
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  EXPECT_EQ(max_abs(a.sample, b), 0.0);
  EXPECT_EQ(a.evals.forwards, 49);
  EXPECT_EQ(a.evals.backwards, 49);
  EXPECT_EQ(method.expected_forwards(1000), 49);
}

TEST(DPS, GradientPullsTheKnownRegionToTheMeasurement) {
  GaussianProblem prob;
  DPSParams off = small_params();
  off.step_size = 0;
  const double free =
      masked_mae(DPS(off).run(*prob.model, prob.input({5})).sample, prob.image, prob.mask);
  const double guided = masked_mae(DPS(small_params()).run(*prob.model, prob.input({5})).sample,
                                   prob.image, prob.mask);
  EXPECT_LT(guided, 0.5 * free);
  DPSParams sr = small_params();
  sr.mode = Measurement::kSuperResolution;
  sr.scale = 2;
  off.mode = Measurement::kSuperResolution;
  off.scale = 2;
  const Degradation deg = Degradation::super_resolution(2, 8);
  auto lowres_err = [&](const DPSParams& p) {
    const at::Tensor out = DPS(p).run(*prob.model, prob.input({5})).sample;
    return (deg.A(out) - deg.A(prob.image)).abs().mean().item<double>();
  };
  EXPECT_LT(lowres_err(sr), 0.5 * lowres_err(off));
}

TEST(DPS, PerSampleNormIsIndependentOfBatchAndBatchNormIsNot) {
  GaussianProblem prob;
  DPSParams per = small_params(), batch = small_params();
  batch.batch_norm = true;
  const at::Tensor pair = DPS(per).run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = DPS(per).run(*prob.model, prob.input({2})).sample;
  EXPECT_LE(max_abs(pair[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(pair[0], pair[1]), 1e-2);
  // One sample: the two norms are the same function.
  EXPECT_LE(max_abs(DPS(batch).run(*prob.model, prob.input({2})).sample, alone), 1e-6);
  // Two samples: the batch-wide norm couples them.
  const at::Tensor coupled = DPS(batch).run(*prob.model, prob.input({1, 2})).sample;
  EXPECT_GT(max_abs(coupled, pair), 1e-3);
}

TEST(DPS, Registered) {
  Registry<Method> reg;
  register_dps_method(reg);
  auto m = reg.create("dps");
  auto* d = dynamic_cast<DPS*>(m.get());
  ASSERT_NE(d, nullptr);
  EXPECT_DOUBLE_EQ(d->params().step_size, 1.0);
  EXPECT_DOUBLE_EQ(d->params().eta, 1.0);
  EXPECT_FALSE(d->params().batch_norm);
  EXPECT_THROW(reg.create("dps", Options{{"mode", "deblur"}}), UsageError);
}

}  // namespace
}  // namespace copaint
