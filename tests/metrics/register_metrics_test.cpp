// The built-in metrics in Registry<Metric>: names, options, direction and the LPIPS factory.
#include "metrics/register_metrics.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <fstream>

#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "metrics/image_metrics.h"
#include "metrics/metric.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

TEST(RegisterMetrics, BuiltinsAreRegistered) {
  register_builtin_metrics();
  register_builtin_metrics();  // idempotent
  auto& r = Registry<Metric>::global();
  for (const char* name : {"psnr", "ssim", "psnr_masked", "known_mse", "lpips", "lpips_masked"}) {
    EXPECT_TRUE(r.contains(name)) << name;
  }
  EXPECT_EQ(r.names().size(), 6u);
  EXPECT_TRUE(r.create("psnr")->higher_is_better());
  EXPECT_TRUE(r.create("ssim")->higher_is_better());
  EXPECT_FALSE(r.create("known_mse")->higher_is_better());
  EXPECT_TRUE(r.create("psnr_masked")->needs_mask());
  EXPECT_THROW(r.create("lpips", Options{{"colour", "red"}}), UsageError);
  EXPECT_THROW(r.create("lpips"), UsageError);  // no weights named
  EXPECT_THROW(r.create("lpips", Options{{"weights", "/nonexistent"}}), InputError);
}

TEST(RegisterMetrics, RegisteredMetricsScoreLikeTheFunctions) {
  register_builtin_metrics();
  auto& r = Registry<Metric>::global();
  at::manual_seed(7);
  const at::Tensor ref = at::rand({1, 3, 16, 16}) * 2 - 1;
  const at::Tensor smp = (ref + 0.1 * at::randn({2, 3, 16, 16})).clamp(-1, 1);
  at::Tensor mask = at::zeros({1, 1, 16, 16});
  mask.narrow(2, 0, 8).fill_(1);
  EXPECT_TRUE(at::equal(r.create("psnr")->score(smp, ref, at::Tensor()), psnr(smp, ref)));
  EXPECT_TRUE(at::equal(r.create("ssim")->score(smp, ref, mask), ssim(smp, ref)));
  EXPECT_TRUE(at::equal(r.create("known_mse")->score(smp, ref, mask), known_mse(smp, ref, mask)));
  EXPECT_TRUE(
      at::equal(r.create("psnr_masked")->score(smp, ref, mask), psnr_masked(smp, ref, mask)));
}

TEST(RegisterMetrics, LpipsFromWeightsOptions) {
  const std::string heads =
      std::string(COPAINT_SHARED_DIR) + "/weights/lpips_v0.1_original/alex.pth";
  const std::string trunk =
      std::string(COPAINT_SHARED_DIR) + "/fixtures/lpips/alex_random_trunk.pt";
  if (!std::ifstream(heads) || !std::ifstream(trunk)) GTEST_SKIP() << "shared LPIPS data absent";
  register_builtin_metrics();
  auto m = Registry<Metric>::global().create("lpips", Options{{"heads", heads}, {"trunk", trunk}});
  EXPECT_EQ(m->name(), "lpips_alex_v0.1");
  EXPECT_FALSE(m->higher_is_better());
  const at::Tensor x = at::rand({2, 3, 64, 64}) * 2 - 1;
  const at::Tensor d = m->score(x, x.flip(3), at::Tensor());
  EXPECT_EQ(d.sizes(), at::IntArrayRef({2}));
  EXPECT_GT(d.min().item<double>(), 0.0);
}

}  // namespace
}  // namespace copaint
