// DDRM: with sigma_0 = 0 and eta_b = 1 the measured part of every x_mod is the measurement plus
// the step's noise, so without step noise the sample's measured part is sqrt(ab_0) y exactly; the
// same in super-resolution; counts, determinism and batch independence.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "framework/core/registry.h"
#include "framework/diffusion/diffusion.h"
#include "methods/ddrm.h"
#include "methods/degradation.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;
using testing_baselines::max_abs;
using testing_baselines::NoiseRecorder;

DDRMParams small_params() {
  DDRMParams p;
  p.respacing = "50";
  return p;
}

float sqrt_ab0() {
  const auto s = DiffusionSchedule::linear(1000).respaced("50");
  return std::sqrt(static_cast<float>(s.alphas_cumprod[0]));
}

TEST(DDRM, WithoutStepNoiseTheKnownPixelsAreTheScaledMeasurement) {
  GaussianProblem prob;
  NoiseRecorder noise;
  noise.scale["step"] = 0.0;
  InpaintInput in = prob.input({1});
  in.x_T = at::randn_like(in.image);
  noise.attach(in);
  const InpaintOutput out = DDRM(small_params()).run(*prob.model, in);
  EXPECT_EQ(out.evals.forwards, 49);
  EXPECT_EQ(noise.count("step"), 49);
  EXPECT_EQ(noise.count("measurement"), 0);  // sigma_0 = 0 draws nothing
  const at::Tensor expected = (in.image * sqrt_ab0()).clamp(-1, 1);
  EXPECT_LE(max_abs(out.sample * prob.mask, expected * prob.mask), 1e-6);
  // With the noise the known pixels move by about sqrt(1 - ab_0) = 0.01 only.
  NoiseRecorder full;
  InpaintInput in2 = prob.input({1});
  full.attach(in2);
  EXPECT_LT(masked_mae(DDRM(small_params()).run(*prob.model, in2).sample, in.image, prob.mask),
            0.03);
}

TEST(DDRM, SuperResolutionKeepsTheScaledLowResolutionImage) {
  GaussianProblem prob;
  DDRMParams p = small_params();
  p.mode = Measurement::kSuperResolution;
  p.scale = 2;
  NoiseRecorder noise;
  noise.scale["step"] = 0.0;
  InpaintInput in = prob.input({1});
  noise.attach(in);
  const at::Tensor out = DDRM(p).run(*prob.model, in).sample;
  const Degradation deg = Degradation::super_resolution(2, 8);
  // Exact on every 2x2 patch the final clamp to [-1, 1] left alone (x0 is not clamped in DDRM,
  // so single pixels of a patch can leave the range).
  const at::Tensor inside = deg.A((out.abs() < 1).to(at::kFloat)) == 1;
  EXPECT_GE(inside.sum().item<int64_t>(), 8);
  const at::Tensor err = (deg.A(out) - deg.A(in.image) * sqrt_ab0()).abs() * inside;
  EXPECT_LE(err.max().item<double>(), 1e-5);
}

TEST(DDRM, DeterministicAndIndependentOfBatch) {
  GaussianProblem prob;
  DDRMParams p = small_params();
  p.eta = 0.85;  // the DDRM paper's setting draws noise off the measured subspace too
  DDRM method(p);
  const at::Tensor a = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor b = method.run(*prob.model, prob.input({1, 2})).sample;
  const at::Tensor alone = method.run(*prob.model, prob.input({2})).sample;
  EXPECT_EQ(max_abs(a, b), 0.0);
  EXPECT_LE(max_abs(a[1], alone[0]), 1e-6);
  EXPECT_GT(max_abs(a[0], a[1]), 1e-2);
}

// A noisy measurement: y gets sigma_0 noise on the known pixels (one "measurement" draw); the
// known pixels then follow y, not the clean image.
TEST(DDRM, NoisyMeasurement) {
  GaussianProblem prob;
  DDRMParams p = small_params();
  p.sigma_0 = 0.2;
  NoiseRecorder noise;
  InpaintInput in = prob.input({1});
  noise.attach(in);
  const at::Tensor out = DDRM(p).run(*prob.model, in).sample;
  EXPECT_EQ(noise.count("measurement"), 1);
  const at::Tensor y = in.image + noise.first("measurement") * 0.2;
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  EXPECT_LT(masked_mae(out, y, prob.mask), masked_mae(out, in.image, prob.mask));
}

TEST(DDRM, Registered) {
  Registry<Method> reg;
  register_ddrm_method(reg);
  auto m = reg.create("ddrm");
  auto* d = dynamic_cast<DDRM*>(m.get());
  ASSERT_NE(d, nullptr);
  EXPECT_DOUBLE_EQ(d->params().eta, 0.0);  // the reference's etaA = etaC
  EXPECT_DOUBLE_EQ(d->params().eta_b, 1.0);
  EXPECT_EQ(m->expected_forwards(1000), 249);
  EXPECT_THROW(reg.create("ddrm", Options{{"sigma_0", "-1"}}), UsageError);
  // eta_b is a weight in [0, 1] (checked by from_options before the typed tables, by the spec now).
  EXPECT_THROW(reg.create("ddrm", Options{{"eta_b", "1.5"}}), UsageError);
  EXPECT_THROW(reg.create("ddrm", Options{{"eta_b", "-0.1"}}), UsageError);
  EXPECT_NO_THROW(reg.create("ddrm", Options{{"eta_b", "0.5"}}));
}

}  // namespace
}  // namespace copaint
