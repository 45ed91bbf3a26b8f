// Every built-in method end to end on the analytic Gaussian-data model, where the conditional
// distribution of the unknown pixels given the known ones is the (clamped) prior itself: a table
// of the known-region error and of the conditional mean and spread errors of the unknown region
// (the cheap "who is coherent" check), asserted against the Monte Carlo error a perfect sampler
// would show (DDNM as the reference runs it: against its known under-dispersion).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "framework/core/registry.h"
#include "methods/method.h"
#include "tests/methods/gaussian_problem.h"

namespace copaint {
namespace {

using testing_baselines::GaussianProblem;
using testing_baselines::masked_mae;

struct Row {
  std::string label;
  std::string method;
  Options options;
  double known_bound;  ///< sanity bound on the known-region MAE
  /// The unknown region's spread relative to the prior's: 1 for a correct sampler; below 1 where
  /// the method is under-dispersed by design (then asserted below that value).
  double spread = 1.0;
};

TEST(BaselinesOnGaussian, ConditionalMomentsTable) {
  register_builtin_methods();
  const auto& registry = Registry<Method>::global();
  GaussianProblem prob;
  constexpr int64_t kSamples = 32;
  std::vector<uint64_t> seeds;
  for (int64_t i = 0; i < kSamples; ++i) seeds.push_back(1000 + i);
  const at::Tensor unknown = (1 - prob.mask).expand({1, 1, -1, -1}).to(at::kDouble);
  const double n_unknown = unknown.sum().item<double>();

  // The truth: the clamped prior's per-pixel mean and spread (Monte Carlo, 20000 draws).
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor draws =
      (prob.mean.unsqueeze(0) + at::randn({20000, 1, 8, 8}, g) * GaussianProblem::kStd)
          .clamp(-1, 1)
          .to(at::kDouble);
  const at::Tensor true_mean = draws.mean(0, true), true_std = draws.std(0, true, true);
  // Monte Carlo error of a 32-sample mean (what a perfect sampler scores).
  const double floor = ((true_std / std::sqrt(double(kSamples))) * unknown).sum().item<double>() /
                       n_unknown * std::sqrt(2 / M_PI);
  // The same for a 32-sample standard deviation (standard error sigma / sqrt(2 (n - 1))).
  const double std_floor =
      ((true_std / std::sqrt(2.0 * (kSamples - 1))) * unknown).sum().item<double>() / n_unknown *
      std::sqrt(2 / M_PI);
  const double prior_spread = (true_std * unknown).sum().item<double>() / n_unknown;

  const std::vector<Row> rows = {
      // Replacement / projection methods put the known pixels in place (up to the last step's
      // noise); gradient methods only pull them there (CoPaint's 2 steps of lr 0.02 over 50
      // steps pull little on this model).
      {"blended", "blended", {{"respacing", "50"}}, 0.1},
      {"resample", "resample", {{"respacing", "50"}, {"particles", "4"}}, 0.1},
      {"repaint",
       "repaint",
       {{"respacing", "50"}, {"jump_length", "5"}, {"jump_n_sample", "3"}},
       0.1},
      {"ddnm", "ddnm", {{"respacing", "50"}}, 0.1, 0.8},
      {"ddnm_paper", "ddnm", {{"respacing", "50"}, {"paper_update", "true"}}, 0.1},
      {"ddrm", "ddrm", {{"respacing", "50"}}, 0.1},
      {"dps", "dps", {{"respacing", "50"}}, 0.3},
      {"copaint", "copaint", {{"respacing", "50"}}, 0.3},
  };
  std::printf(
      "\nGaussian model 8x8, half mask, %lld samples, respacing 50 (perfect-sampler mean error "
      "~%.3f)\n",
      static_cast<long long>(kSamples), floor);
  std::printf("(perfect-sampler spread error ~%.3f, prior spread %.3f)\n", std_floor, prior_spread);
  std::printf("%-10s %10s %12s %12s %8s %9s %9s %8s\n", "method", "known MAE", "unk mean err",
              "unk std err", "spread", "fwd/smp", "bwd/smp", "ms");
  for (const Row& row : rows) {
    ASSERT_TRUE(registry.contains(row.method)) << row.label;
    auto method = registry.create(row.method, row.options);
    const InpaintInput input = prob.input(seeds);  // fresh generators: the same seeds for every row
    const auto start = std::chrono::steady_clock::now();
    const InpaintOutput out = method->run(*prob.model, input);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const at::Tensor s = out.sample.to(at::kDouble);
    ASSERT_TRUE(at::isfinite(s).all().item<bool>()) << row.label;
    const double known = masked_mae(out.sample, input.image, prob.mask);
    const double mean_err =
        ((s.mean(0, true) - true_mean).abs() * unknown).sum().item<double>() / n_unknown;
    const double std_err =
        ((s.std(0, true, true) - true_std).abs() * unknown).sum().item<double>() / n_unknown;
    const double spread =
        (s.std(0, true, true) * unknown).sum().item<double>() / n_unknown / prior_spread;
    std::printf("%-10s %10.4f %12.4f %12.4f %8.3f %9lld %9lld %8.1f\n", row.label.c_str(), known,
                mean_err, std_err, spread, static_cast<long long>(out.evals.forwards),
                static_cast<long long>(out.evals.backwards), ms);
    RecordProperty(row.label + "_known_mae", std::to_string(known));
    RecordProperty(row.label + "_unknown_mean_err", std::to_string(mean_err));
    // The known region is matched; the unknown region's mean and spread are within a few Monte
    // Carlo errors of the prior's. DDNM as the reference runs it scales its fresh noise by
    // gamma_t = sqrt(1 - ab_t^2) on top of sqrt(1 - ab_{t-1}), which shrinks the late steps' noise:
    // it must stay under-dispersed (ddnm_paper: the paper's update without that factor).
    EXPECT_LT(known, row.known_bound) << row.label;
    EXPECT_LT(mean_err, 4 * floor) << row.label;
    if (row.spread == 1.0) {
      EXPECT_LT(std_err, 4 * std_floor) << row.label;
    } else {
      EXPECT_LT(spread, row.spread) << row.label;
    }
    EXPECT_GT(out.evals.forwards, 0) << row.label;
  }
}

}  // namespace
}  // namespace copaint
