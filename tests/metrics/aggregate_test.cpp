// Aggregation helpers: mean/std/95% interval and the reference's best-of-samples mean.
#include "metrics/aggregate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "framework/core/error.h"

namespace copaint {
namespace {

TEST(Aggregate, MeanStdAndInterval) {
  const Aggregate a = aggregate({1.0, 2.0, 3.0, 6.0});
  EXPECT_EQ(a.count, 4);
  EXPECT_DOUBLE_EQ(a.mean, 3.0);
  // Deviations -2,-1,0,3 -> sum of squares 14, n - 1 = 3.
  EXPECT_NEAR(a.std, std::sqrt(14.0 / 3.0), 1e-12);
  EXPECT_NEAR(a.ci95, student_t_975(3) * std::sqrt(14.0 / 3.0) / 2.0, 1e-12);
}

TEST(Aggregate, DegenerateSizes) {
  const Aggregate empty = aggregate({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_TRUE(std::isnan(empty.mean));
  const Aggregate one = aggregate({0.25});
  EXPECT_DOUBLE_EQ(one.mean, 0.25);
  EXPECT_TRUE(std::isnan(one.std));
  EXPECT_TRUE(std::isnan(one.ci95));
}

TEST(Aggregate, StudentQuantiles) {
  EXPECT_NEAR(student_t_975(1), 12.7062, 1e-4);
  EXPECT_NEAR(student_t_975(10), 2.2281, 1e-4);
  // The expansion beyond the table continues it smoothly and tends to the normal quantile.
  EXPECT_NEAR(student_t_975(30), 2.0423, 1e-4);
  EXPECT_NEAR(student_t_975(31), 2.0395, 1e-4);
  EXPECT_NEAR(student_t_975(60), 2.0003, 1e-4);
  EXPECT_NEAR(student_t_975(120), 1.9799, 1e-4);
  EXPECT_NEAR(student_t_975(1000000), 1.95996, 1e-4);
  EXPECT_LT(student_t_975(31), student_t_975(30));
}

TEST(Aggregate, BestMeanPerImage) {
  // Two images x three samples, as the reference stacks them (rows = images).
  const std::vector<double> scores = {0.30, 0.10, 0.20, 0.50, 0.70, 0.40};
  const std::vector<int64_t> ids = {0, 0, 0, 1, 1, 1};
  EXPECT_NEAR(best_mean(scores, ids, /*higher_is_better=*/false), (0.10 + 0.40) / 2, 1e-12);
  EXPECT_NEAR(best_mean(scores, ids, /*higher_is_better=*/true), (0.30 + 0.70) / 2, 1e-12);
  // Interleaved ids and string ids give the same result.
  const std::vector<double> mixed = {0.30, 0.50, 0.10, 0.70, 0.20, 0.40};
  const std::vector<std::string> names = {"a", "b", "a", "b", "a", "b"};
  EXPECT_NEAR(best_mean(mixed, names, false), (0.10 + 0.40) / 2, 1e-12);
  const std::vector<double> best = best_per_image(mixed, names, true);
  ASSERT_EQ(best.size(), 2u);
  EXPECT_DOUBLE_EQ(best[0], 0.30);
  EXPECT_DOUBLE_EQ(best[1], 0.70);
}

TEST(Aggregate, BestIgnoresNaNAndChecksLengths) {
  const double nan = std::nan("");
  EXPECT_DOUBLE_EQ(best_mean({nan, 2.0, 1.0}, std::vector<int64_t>{7, 7, 7}, true), 2.0);
  EXPECT_THROW(best_mean({1.0}, std::vector<int64_t>{1, 2}, true), InputError);
}

}  // namespace
}  // namespace copaint
