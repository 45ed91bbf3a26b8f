// LaMa-style stroke masks (the narrow/wide stand-ins): determinism, shape, the hole cap, and
// hole-fraction statistics within the ranges documented in datasets/stroke_masks.h.
#include "datasets/stroke_masks.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "datasets/mask.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

struct Stats {
  double mean = 0, std = 0, min = 1, max = 0;
};

Stats hole_stats(const StrokeMaskParams& p, int64_t n, int64_t size, uint64_t seed) {
  std::vector<double> h;
  for (int64_t i = 0; i < n; ++i)
    h.push_back(1 - stroke_mask(size, size, i, seed, p).mean().item<double>());
  Stats s;
  for (double v : h) s.mean += v / n, s.min = std::min(s.min, v), s.max = std::max(s.max, v);
  for (double v : h) s.std += (v - s.mean) * (v - s.mean) / n;
  s.std = std::sqrt(s.std);
  return s;
}

TEST(StrokeMasks, DeterministicBinaryAndPerIndex) {
  for (const auto& p : {thin_stroke_params(), thick_stroke_params()}) {
    const at::Tensor a = stroke_mask(64, 48, 3, 11, p);
    ASSERT_EQ(a.sizes(), (at::IntArrayRef{1, 64, 48}));
    EXPECT_TRUE(at::equal(a, stroke_mask(64, 48, 3, 11, p)));
    EXPECT_FALSE(at::equal(a, stroke_mask(64, 48, 4, 11, p)));
    EXPECT_FALSE(at::equal(a, stroke_mask(64, 48, 3, 12, p)));
    EXPECT_TRUE(at::equal(a, (a > 0.5).to(at::kFloat)));
  }
  StrokeMaskParams bad;
  bad.max_times = -1;
  EXPECT_THROW(stroke_mask(8, 8, 0, 0, bad), UsageError);
  EXPECT_THROW(stroke_mask(0, 8, 0, 0, thin_stroke_params()), UsageError);
}

// RePaint's sets measured (../shared/data/repaint_masks, 100 each, 256x256): thin hole fraction
// mean 0.297, std 0.123; thick mean 0.249, std 0.126; all <= 0.5. Our generators must stay within
// +-0.05 of those means and std, and never exceed the 0.5 cap.
TEST(StrokeMasks, HoleStatisticsNearRePaintSets) {
  const Stats thin = hole_stats(thin_stroke_params(), 100, 256, 0);
  const Stats thick = hole_stats(thick_stroke_params(), 100, 256, 0);
  std::printf("thin : mean %.4f std %.4f min %.4f max %.4f\n", thin.mean, thin.std, thin.min,
              thin.max);
  std::printf("thick: mean %.4f std %.4f min %.4f max %.4f\n", thick.mean, thick.std, thick.min,
              thick.max);
  EXPECT_NEAR(thin.mean, 0.297, 0.05);
  EXPECT_NEAR(thin.std, 0.123, 0.05);
  EXPECT_NEAR(thick.mean, 0.249, 0.05);
  EXPECT_NEAR(thick.std, 0.126, 0.05);
  EXPECT_LE(thin.max, 0.5);
  EXPECT_LE(thick.max, 0.5);
  EXPECT_GT(thin.min, 0.0);
}

TEST(StrokeMasks, ScaleWithImageSize) {
  const Stats s64 = hole_stats(thin_stroke_params(), 30, 64, 1);
  EXPECT_GT(s64.mean, 0.15);
  EXPECT_LT(s64.mean, 0.45);
}

TEST(StrokeMasks, RegisteredAsNarrowAndWideWithoutFolders) {
  register_builtin_masks();
  auto& reg = Registry<MaskGenerator>::global();
  auto narrow = reg.create("narrow");
  auto wide = reg.create("wide");
  EXPECT_NE(narrow->describe().find("generator"), std::string::npos);
  EXPECT_TRUE(
      at::equal(narrow->make(32, 32, 2, 5), stroke_mask(32, 32, 2, 5, thin_stroke_params())));
  EXPECT_TRUE(
      at::equal(wide->make(32, 32, 2, 5), stroke_mask(32, 32, 2, 5, thick_stroke_params())));
}

}  // namespace
}  // namespace copaint
