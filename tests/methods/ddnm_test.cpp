// DDNM: the range-space correction meets the measurement exactly and leaves the null space alone;
// the sampler's schedule, counts, determinism, batch independence and super-resolution mode.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "framework/core/registry.h"
#include "methods/ddnm.h"
#include "methods/degradation.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;
using testing_baselines::NoiseRecorder;
using testing_baselines::RecordingDenoiser;

DDNMParams small_params() {
  DDNMParams p;
  p.respacing = "50";
  return p;
}

TEST(DDNM, CorrectionMeetsTheMeasurementAndKeepsTheNullSpace) {
  const at::Tensor x0 = at::rand({2, 3, 8, 8}, at::kFloat) * 2 - 1;
  const at::Tensor image = at::rand({2, 3, 8, 8}, at::kFloat) * 2 - 1;
  const at::Tensor one = at::ones({}, at::kFloat);
  {
    const at::Tensor mask = (at::rand({2, 1, 8, 8}) > 0.5).to(at::kFloat);
    const Degradation deg = Degradation::inpaint(mask);
    const at::Tensor fixed = ddnm_correct(deg, x0, deg.A(image), one);
    EXPECT_EQ(max_abs(deg.A(fixed), deg.A(image)), 0.0);           // A x = y exactly
    EXPECT_EQ(max_abs(fixed * (1 - mask), x0 * (1 - mask)), 0.0);  // null space untouched
  }
  for (int64_t scale : {2, 4}) {
    const Degradation deg = Degradation::super_resolution(scale, 8);
    const at::Tensor y = deg.A(image);
    EXPECT_LE(max_abs(deg.A(deg.Ap(y)), y), 1e-6);  // A Ap = I
    const at::Tensor fixed = ddnm_correct(deg, x0, y, one);
    EXPECT_LE(max_abs(deg.A(fixed), y), 1e-6);
    EXPECT_LE(max_abs(fixed - deg.project(fixed), x0 - deg.project(x0)), 1e-6);
  }
  EXPECT_THROW(Degradation::super_resolution(3, 8), UsageError);
}

TEST(DDNM, DeterministicIndependentOfBatchAndCloseOnTheKnownRegion) {
  GaussianProblem prob;
  DDNM method(small_params());
  const InpaintOutput a = method.run(*prob.model, prob.input({1, 2}));
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = method.run(*prob.model, prob.input({2})).sample;
  EXPECT_EQ(max_abs(a.sample, b), 0.0);
  EXPECT_LE(max_abs(a.sample[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(a.sample[0], a.sample[1]), 1e-2);
  EXPECT_EQ(a.evals.forwards, 49);  // steps 49 .. 1, none at t = 0
  EXPECT_EQ(method.expected_forwards(1000), 49);
  EXPECT_EQ(DDNM(DDNMParams{}).expected_forwards(1000), 249);
  // The last update is sqrt(ab_0) (x0 with its known pixels = image) + small noise.
  EXPECT_LT(masked_mae(a.sample, prob.input({1, 2}).image, prob.mask), 0.02);
}

// Every network input after the first has (nearly) the image's known pixels scaled by
// sqrt(ab_{t}) of its step, and time travel draws "undo" noise.
TEST(DDNM, TimeTravelScheduleAndCounts) {
  GaussianProblem prob;
  DDNMParams p = small_params();
  p.jump_length = 5;
  p.jump_n_sample = 3;
  DDNM method(p);
  RecordingDenoiser rec(*prob.model);
  NoiseRecorder noise;
  InpaintInput in = prob.input({4});
  noise.attach(in);
  const InpaintOutput out = method.run(rec, in);
  const auto list = method.times(50);
  EXPECT_EQ(list.back(), 0);
  int64_t down = 0, up = 0;
  for (size_t k = 0; k + 1 < list.size(); ++k) (list[k + 1] < list[k] ? down : up) += 1;
  EXPECT_EQ(out.evals.forwards, down);
  EXPECT_EQ(noise.count("step"), down);
  EXPECT_EQ(noise.count("undo"), up);
  EXPECT_GT(up, 0);
  EXPECT_LT(masked_mae(out.sample, in.image, prob.mask), 0.02);
}

TEST(DDNM, SuperResolutionMatchesTheLowResolutionImage) {
  GaussianProblem prob;
  DDNMParams p = small_params();
  p.mode = Measurement::kSuperResolution;
  p.scale = 2;
  const at::Tensor out = DDNM(p).run(*prob.model, prob.input({3})).sample;
  const Degradation deg = Degradation::super_resolution(2, 8);
  EXPECT_LT((deg.A(out) - deg.A(prob.image)).abs().mean().item<double>(), 0.02);
  // Inpainting mode with the same seed keeps the half mask instead.
  const at::Tensor inpaint = DDNM(small_params()).run(*prob.model, prob.input({3})).sample;
  EXPECT_GT(max_abs(out, inpaint), 0.05);
}

// The reference's gamma_t factor shrinks the late steps' noise: its unknown region varies less
// across seeds than with the paper's update (the prior's spread here is 0.5).
TEST(DDNM, PaperUpdateIsMoreDispersedThanTheReferenceUpdate) {
  GaussianProblem prob;
  std::vector<uint64_t> seeds;
  for (uint64_t s = 0; s < 16; ++s) seeds.push_back(s + 20);
  auto spread = [&](bool paper) {
    DDNMParams p = small_params();
    p.paper_update = paper;
    const at::Tensor out = DDNM(p).run(*prob.model, prob.input(seeds)).sample;
    return (out.std(0) * (1 - prob.mask[0])).sum().item<double>() /
           (1 - prob.mask).sum().item<double>();
  };
  const double reference = spread(false), paper = spread(true);
  EXPECT_GT(paper, 1.5 * reference);
  EXPECT_GT(paper, 0.3);
}

TEST(DDNM, Registered) {
  Registry<Method> reg;
  register_ddnm_method(reg);
  auto m = reg.create("ddnm");
  auto* d = dynamic_cast<DDNM*>(m.get());
  ASSERT_NE(d, nullptr);
  EXPECT_DOUBLE_EQ(d->params().eta, 0.85);
  EXPECT_DOUBLE_EQ(d->params().sigma_y, 0.0);
  EXPECT_THROW(reg.create("ddnm", Options{{"mode", "super_resolution"}}), UsageError);  // no scale
  EXPECT_THROW(reg.create("ddnm", Options{{"eta", "1.5"}}), UsageError);
  EXPECT_THROW(reg.create("ddnm", Options{{"paper_update", "true"}, {"sigma_y", "0.1"}}),
               UsageError);
  GaussianProblem prob;
  auto sr3 = reg.create("ddnm",
                        Options{{"respacing", "50"}, {"mode", "super_resolution"}, {"scale", "3"}});
  EXPECT_THROW(sr3->run(*prob.model, prob.input({1})), UsageError);  // 3 does not divide 8
}

}  // namespace
}  // namespace copaint
