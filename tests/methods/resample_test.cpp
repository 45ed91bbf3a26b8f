// Resample (replacement DDIM over particles with residual resampling): the resampling rule, the
// one-particle case equal to Blended, batch independence, counts, and the reference's pre-step
// variant.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "framework/core/registry.h"
#include "methods/replacement.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;
using testing_baselines::NoiseRecorder;

ResampleParams small_params(int64_t particles) {
  ResampleParams p;
  p.ddim.respacing = "50";
  p.ddim.steps = 20;
  p.particles = particles;
  return p;
}

TEST(Resample, ResidualResamplingCopiesIntegerPartsAndDrawsTheRest) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  // n w / sum w = 2, 1, 1: copies only, no draw.
  EXPECT_EQ(residual_resample({0.5, 0.25, 0.25}, 4, gen), (std::vector<int64_t>{0, 0, 1, 2}));
  // NaN or a vanishing sum fall back to uniform weights.
  const double nan = std::nan("");
  EXPECT_EQ(residual_resample({nan, 1.0, 1.0}, 3, gen), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(residual_resample({0.0, 0.0, 1e-9}, 3, gen), (std::vector<int64_t>{0, 1, 2}));
  // 2/3 each: no copies, two distinct draws (without replacement).
  for (int rep = 0; rep < 20; ++rep) {
    const auto idx = residual_resample({1.0, 1.0, 1.0}, 2, gen);
    ASSERT_EQ(idx.size(), 2u);
    EXPECT_NE(idx[0], idx[1]);
  }
  // One dominant weight: floor(3 * 0.9) = 2 copies of it, one draw for the rest.
  const auto idx = residual_resample({0.9, 0.05, 0.05}, 3, gen);
  EXPECT_EQ(idx[0], 0);
  EXPECT_EQ(idx[1], 0);
  // Deterministic given the generator.
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(7),
       g2 = at::make_generator<at::CPUGeneratorImpl>(7);
  EXPECT_EQ(residual_resample({0.3, 0.2, 0.5, 0.1}, 5, g1),
            residual_resample({0.3, 0.2, 0.5, 0.1}, 5, g2));
}

// With one particle, resampling is the identity and the noise draws are Blended's.
TEST(Resample, OneParticleIsBlended) {
  GaussianProblem prob;
  const ResampleParams p = small_params(1);
  const at::Tensor r = Resample(p).run(*prob.model, prob.input({4, 8})).sample;
  const at::Tensor b = Blended(p.ddim).run(*prob.model, prob.input({4, 8})).sample;
  EXPECT_EQ(max_abs(r, b), 0.0);
}

TEST(Resample, DeterministicIndependentOfBatchAndCountsParticles) {
  GaussianProblem prob;
  Resample method(small_params(4));
  const InpaintOutput a = method.run(*prob.model, prob.input({1, 2}));
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = method.run(*prob.model, prob.input({2})).sample;
  EXPECT_EQ(a.sample.sizes(), prob.input({1, 2}).image.sizes());
  EXPECT_EQ(max_abs(a.sample, b), 0.0);
  EXPECT_LE(max_abs(a.sample[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(a.sample[0], a.sample[1]), 1e-2);
  EXPECT_EQ(a.evals.forwards, 19 * 4);  // one evaluation per particle and step
  EXPECT_EQ(method.expected_forwards(1000), 19 * 4);
  // Known region within the noise level of the last step (sqrt(1 - ab) = 0.13 at respaced step 2).
  EXPECT_LT(masked_mae(a.sample, prob.input({1, 2}).image, prob.mask), 0.2);
}

// The reference's variant keeps the pre-step states: the unknown region never leaves x_T, so the
// output's unknown region is one of the initial particles', clamped.
TEST(Resample, PreStepVariantKeepsInitialNoiseInTheUnknownRegion) {
  GaussianProblem prob;
  ResampleParams p = small_params(3);
  p.resample_pre_step = true;
  NoiseRecorder noise;
  InpaintInput in = prob.input({6});
  noise.attach(in);
  const at::Tensor out = Resample(p).run(*prob.model, in).sample;
  const at::Tensor x_T = noise.first("x_T");
  const at::Tensor unknown = 1 - prob.mask;
  double best = 1e9;
  for (int64_t i = 0; i < 3; ++i) {
    best = std::min(best, max_abs(out[0] * unknown[0], x_T[i].clamp(-1, 1) * unknown[0]));
  }
  EXPECT_EQ(best, 0.0);
  // The default advances the particles.
  p.resample_pre_step = false;
  NoiseRecorder noise2;
  InpaintInput in2 = prob.input({6});
  noise2.attach(in2);
  const at::Tensor stepped = Resample(p).run(*prob.model, in2).sample;
  EXPECT_GT(max_abs(stepped * unknown, noise2.first("x_T")[0].clamp(-1, 1) * unknown), 0.1);
}

TEST(Resample, RejectsGivenInitialNoiseAndBadOptions) {
  GaussianProblem prob;
  InpaintInput in = prob.input({1});
  in.x_T = at::zeros_like(in.image);
  EXPECT_THROW(Resample(small_params(2)).run(*prob.model, in), InputError);
  Registry<Method> reg;
  register_replacement_methods(reg);
  EXPECT_THROW(reg.create("resample", Options{{"particles", "0"}}), UsageError);
  auto m = reg.create("resample");
  EXPECT_EQ(dynamic_cast<Resample*>(m.get())->params().particles, 10);
  EXPECT_EQ(m->expected_forwards(1000), 249 * 10);
}

}  // namespace
}  // namespace copaint
