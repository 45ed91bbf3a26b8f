// Tests of framework/diffusion/diffusion.h: broadcasting, x0 <-> eps round trips, the DDIM step,
// q_sample, and parity of the DDIM step and the time-travel undo with the reference's CoPaint
// fixtures.
#include "framework/diffusion/diffusion.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "framework/core/error.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kCoPaintFixtures = std::string(COPAINT_TEST_FIXTURES_DIR) + "/copaint/";

bool exists(const std::string& path) { return std::ifstream(path).good(); }

std::map<std::string, at::Tensor> read_tensor_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const c10::IValue value = torch::jit::pickle_load(bytes);
  std::map<std::string, at::Tensor> out;
  for (const auto& kv : value.toGenericDict()) {
    if (kv.value().isTensor()) out[kv.key().toStringRef()] = kv.value().toTensor();
  }
  return out;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

const DiffusionSchedule& schedule50() {
  static const DiffusionSchedule s = DiffusionSchedule::linear(1000).respaced("50");
  return s;
}

TEST(Diffusion, PerSampleBroadcast) {
  const at::Tensor x = at::zeros({3, 2, 4, 4});
  const at::Tensor v = at::arange(3, at::kFloat);
  const at::Tensor b = per_sample(v, x);
  EXPECT_EQ(b.sizes(), at::IntArrayRef({3, 1, 1, 1}));
  const at::Tensor y = x + b;
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(y[i].min().item<float>(), static_cast<float>(i));
  EXPECT_EQ(per_sample(at::scalar_tensor(2.0), x).sizes(), at::IntArrayRef({1, 1, 1, 1}));
  EXPECT_EQ(per_sample(at::ones({1}), at::zeros({5, 7})).sizes(), at::IntArrayRef({1, 1}));
  EXPECT_THROW(per_sample(at::ones({2}), x), InputError);
  EXPECT_THROW(per_sample(at::ones({3, 1}), x), InputError);

  const at::Tensor t = batch_steps(7, x);
  EXPECT_EQ(t.scalar_type(), at::kLong);
  EXPECT_EQ(t.sizes(), at::IntArrayRef({3}));
  EXPECT_EQ(t.min().item<int64_t>(), 7);
  EXPECT_EQ(t.max().item<int64_t>(), 7);
}

TEST(Diffusion, ExtractCastsLikeTheReference) {
  const DiffusionSchedule& s = schedule50();
  const at::Tensor x = at::zeros({2, 3, 4, 4});
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 49});
  const at::Tensor ab = extract(s.alphas_cumprod, t, x);
  EXPECT_EQ(ab.scalar_type(), at::kFloat);
  EXPECT_EQ(ab.sizes(), at::IntArrayRef({2, 1, 1, 1}));
  EXPECT_EQ(ab[0].item<float>(), static_cast<float>(s.alphas_cumprod[0]));
  EXPECT_EQ(ab[1].item<float>(), static_cast<float>(s.alphas_cumprod[49]));
  // Double x keeps double coefficients.
  const at::Tensor abd = extract(s.alphas_cumprod, t, x.to(at::kDouble));
  EXPECT_EQ(abd[1].item<double>(), s.alphas_cumprod[49]);
  // alpha_bar(-1) = 1; extract itself is strict.
  EXPECT_EQ(alpha_bar_at(s, at::tensor(std::vector<int64_t>{-1, 3}), x)[0].item<float>(), 1.0f);
  EXPECT_THROW(extract(s.alphas_cumprod, at::tensor(std::vector<int64_t>{-1, 3}), x), UsageError);
  EXPECT_THROW(extract(s.alphas_cumprod, at::tensor(std::vector<int64_t>{50, 3}), x), UsageError);
  EXPECT_THROW(extract(s.alphas_cumprod, at::ones({2}), x), InputError);  // float steps
}

TEST(Diffusion, X0EpsRoundTrip) {
  const DiffusionSchedule& s = schedule50();
  at::manual_seed(0);
  const at::Tensor x0 = at::rand({2, 3, 8, 8}) * 2 - 1;
  const at::Tensor eps = at::randn({2, 3, 8, 8});
  for (int64_t step : {0, 10, 49}) {
    const at::Tensor t = at::tensor(std::vector<int64_t>{step, step / 2});
    const at::Tensor xt = q_sample(s, x0, t, eps);
    // x_t = sqrt(ab) x0 + sqrt(1-ab) eps, per sample.
    const double ab = s.alpha_bar(step);
    EXPECT_LT(max_abs(xt[0], std::sqrt(ab) * x0[0] + std::sqrt(1 - ab) * eps[0]), 1e-5);
    // x0 -> eps -> x0 and eps -> x0 -> eps recover the inputs (float32; 1/sqrt(ab) <= 16).
    EXPECT_LT(max_abs(x0_from_eps(s, xt, t, eps), x0), 1e-4) << step;
    EXPECT_LT(max_abs(eps_from_x0(s, xt, t, x0), eps), step == 0 ? 2e-3 : 1e-4) << step;
    // In double the round trips are exact to rounding.
    const at::Tensor x0d = x0.to(at::kDouble), epsd = eps.to(at::kDouble);
    const at::Tensor xtd = q_sample(s, x0d, t, epsd);
    EXPECT_LT(max_abs(x0_from_eps(s, xtd, t, epsd), x0d), 1e-12);
    EXPECT_LT(max_abs(eps_from_x0(s, xtd, t, x0d), epsd), 1e-10);
  }
}

TEST(Diffusion, DdimStepDeterministicAtEtaZero) {
  const DiffusionSchedule& s = schedule50();
  at::manual_seed(1);
  const at::Tensor x0 = at::rand({2, 3, 8, 8}) * 2 - 1;
  const at::Tensor eps = at::randn({2, 3, 8, 8});
  const at::Tensor t = batch_steps(30, x0), prev = batch_steps(20, x0);
  EXPECT_EQ(ddim_sigma(s, t, prev, 0.0, x0).abs().max().item<float>(), 0.0f);
  const at::Tensor a = ddim_step(s, x0, eps, t, prev);
  const at::Tensor b = ddim_step(s, x0, eps, t, prev, 0.0, at::randn({2, 3, 8, 8}));
  EXPECT_TRUE(at::equal(a, b));  // noise has no effect when sigma = 0
  // The deterministic step lands on q_sample(x0, prev) with the same eps (DDIM consistency).
  EXPECT_LT(max_abs(a, q_sample(s, x0, prev, eps)), 1e-5);
  // prev = -1 (alpha_bar = 1) returns x0.
  EXPECT_LT(max_abs(ddim_step(s, x0, eps, t, batch_steps(-1, x0)), x0), 1e-6);
  // Chaining DDIM steps with the eps recovered at each point keeps x0 and eps fixed.
  at::Tensor x = q_sample(s, x0, t, eps);
  for (auto pair : std::vector<std::pair<int64_t, int64_t>>{{30, 20}, {20, 5}, {5, 0}}) {
    const at::Tensor tc = batch_steps(pair.first, x), tp = batch_steps(pair.second, x);
    x = ddim_step(s, x0_from_eps(s, x, tc, eps), eps, tc, tp);
  }
  EXPECT_LT(max_abs(x, q_sample(s, x0, batch_steps(0, x0), eps)), 1e-4);
}

TEST(Diffusion, DdimStepWithNoise) {
  const DiffusionSchedule& s = schedule50();
  at::manual_seed(2);
  const at::Tensor x0 = at::rand({2, 1, 4, 4}) * 2 - 1;
  const at::Tensor eps = at::randn({2, 1, 4, 4});
  const at::Tensor noise = at::randn({2, 1, 4, 4});
  const int64_t tc = 30, tp = 20;
  const double eta = 0.7, a = s.alpha_bar(tc), p = s.alpha_bar(tp);
  const double sigma = eta * std::sqrt((1 - p) / (1 - a)) * std::sqrt(1 - a / p);
  EXPECT_NEAR(ddim_sigma(s, batch_steps(tc, x0), batch_steps(tp, x0), eta, x0)[1].item<float>(),
              sigma, 1e-6);
  const at::Tensor got =
      ddim_step(s, x0, eps, batch_steps(tc, x0), batch_steps(tp, x0), eta, noise);
  const at::Tensor want =
      std::sqrt(p) * x0 + std::sqrt(1 - p - sigma * sigma) * eps + sigma * noise;
  EXPECT_LT(max_abs(got, want), 1e-5);
  // eta = 1 is DDPM's posterior standard deviation sqrt(beta~).
  const double beta_tilde = (1 - p) / (1 - a) * (1 - a / p);
  EXPECT_NEAR(ddim_sigma(s, batch_steps(tc, x0), batch_steps(tp, x0), 1.0, x0)[0].item<float>(),
              std::sqrt(beta_tilde), 1e-6);
  // At t = 0 the noise is masked out, per sample.
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, tc});
  const at::Tensor pv = at::tensor(std::vector<int64_t>{-1, tp});
  const at::Tensor mixed = ddim_step(s, x0, eps, t, pv, eta, noise);
  EXPECT_LT(max_abs(mixed[0], x0[0]), 1e-6);
  EXPECT_LT(max_abs(mixed[1], got[1]), 1e-6);
}

TEST(Diffusion, UndoStepIsOneForwardStep) {
  const DiffusionSchedule& s = schedule50();
  at::manual_seed(3);
  const at::Tensor x = at::randn({1, 3, 4, 4});
  const at::Tensor noise = at::randn({1, 3, 4, 4});
  const at::Tensor up = undo_step(s, x, batch_steps(11, x), noise);
  const double beta = s.beta(11);
  EXPECT_LT(max_abs(up, std::sqrt(1 - beta) * x + std::sqrt(beta) * noise), 1e-6);
  // Noising x0 to t then one undo step has the marginal of q_sample at t + 1 (same variance).
  const double a = s.alpha_bar(10), b = s.alpha_bar(11);
  EXPECT_NEAR((1 - beta) * a, b, 1e-12);
  EXPECT_NEAR((1 - beta) * (1 - a) + beta, 1 - b, 1e-12);
}

TEST(Diffusion, HelpersAreDifferentiable) {
  const DiffusionSchedule& s = schedule50();
  at::Tensor x = at::randn({1, 3, 4, 4}).requires_grad_(true);
  const at::Tensor eps = at::randn({1, 3, 4, 4});
  const at::Tensor t = batch_steps(25, x);
  const at::Tensor x0 = x0_from_eps(s, x, t, eps);
  ddim_step(s, x0, eps, t, batch_steps(10, x)).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  const double want = std::sqrt(s.alpha_bar(10)) * std::sqrt(1.0 / s.alpha_bar(25));
  EXPECT_NEAR(x.grad().mean().item<float>(), want, 1e-5);
}

/// The reference's DDIM update (sigma 0) on the recorded CoPaint steps: for every denoising call,
/// eps is recovered from (x_opt, pred_x0) where pred_x0 was not clamped, and
/// ddim_step(pred_x0, eps) must give the recorded x_prev there.
TEST(Diffusion, DdimStepMatchesCoPaintFixture) {
  const std::string path = kCoPaintFixtures + "copaint_g2_n2.pt";
  ASSERT_TRUE(exists(path)) << "committed fixture missing: " << path;
  const auto fx = read_tensor_dict(path);
  const DiffusionSchedule& s = schedule50();
  const at::Tensor kind = fx.at("step_kind"), ts = fx.at("step_t"), ps = fx.at("step_prev_t");
  double worst = 0.0;
  int64_t calls = 0;
  for (int64_t k = 0; k < kind.size(0); ++k) {
    if (kind[k].item<int64_t>() != 0) continue;
    const at::Tensor x = fx.at("x_opt")[k], pred = fx.at("pred_x0")[k];
    const at::Tensor t = batch_steps(ts[k].item<int64_t>(), x);
    const at::Tensor prev = batch_steps(ps[k].item<int64_t>(), x);
    const at::Tensor eps = eps_from_x0(s, x, t, pred);
    const at::Tensor got = ddim_step(s, pred, eps, t, prev);
    const at::Tensor free = pred.abs() < 1;
    ASSERT_GT(free.sum().item<int64_t>(), 0);
    worst = std::max(worst,
                     max_abs(got.masked_select(free), fx.at("trajectory")[k].masked_select(free)));
    ++calls;
  }
  EXPECT_EQ(calls, 49);
  std::cout << "[ ddim_step vs reference x_prev: max abs error " << worst << " ]\n";
  EXPECT_LT(worst, 2e-6) << "max abs error of x_prev over " << calls << " calls";
}

/// CoPaint-TT's forward "undo" jumps: from x_opt of each optimise-before-travel call, undo_step
/// with the recorded noise at undo_t must reproduce the x_t the next call was given.
TEST(Diffusion, UndoMatchesCoPaintTimeTravelFixture) {
  const std::string path = kCoPaintFixtures + "copaint_tt_j10.pt";
  ASSERT_TRUE(exists(path)) << "committed fixture missing: " << path;
  const auto fx = read_tensor_dict(path);
  const DiffusionSchedule& s = schedule50();
  const at::Tensor kind = fx.at("step_kind"), ts = fx.at("step_t");
  const at::Tensor noise = fx.at("undo_noise"), undo_t = fx.at("undo_t");
  int64_t u = 0, jumps = 0;
  double worst = 0.0;
  for (int64_t k = 0; k + 1 < kind.size(0); ++k) {
    if (kind[k].item<int64_t>() != 1) continue;
    at::Tensor x = fx.at("x_opt")[k];
    int64_t cur = ts[k].item<int64_t>();
    while (u < undo_t.size(0) && undo_t[u].item<int64_t>() == cur + 1) {
      x = undo_step(s, x, batch_steps(cur + 1, x), noise[u]);
      ++cur;
      ++u;
    }
    ASSERT_EQ(ts[k + 1].item<int64_t>(), cur) << "call " << k + 1;
    worst = std::max(worst, max_abs(x, fx.at("x_in")[k + 1]));
    ++jumps;
  }
  EXPECT_EQ(u, undo_t.size(0));
  EXPECT_EQ(jumps, 4);
  std::cout << "[ undo_step vs reference x_t after " << u << " undos: max abs error " << worst
            << " ]\n";
  EXPECT_LT(worst, 1e-6) << "max abs error after the undo jumps";
}

}  // namespace
}  // namespace copaint
