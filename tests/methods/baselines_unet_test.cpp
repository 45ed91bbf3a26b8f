// Every baseline end to end on the tiny trained ADM UNet (learn_sigma: 2C output channels, RGB
// 32x32) with a short respacing: the variance channels, autograd through the network (DPS) and
// super-resolution modes run, the samples fit their measurement, and evaluations are counted
// (against literal counts of the schedules, not the methods' own expected_forwards).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "datasets/masks.h"
#include "framework/core/registry.h"
#include "framework/nn/denoisers.h"
#include "methods/method.h"
#include "tests/test_paths.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

const std::string kFixtures = COPAINT_TEST_FIXTURES_DIR;

std::unique_ptr<UNetDenoiser> tiny_unet() {
  const UNetConfig c = fixtures::tiny_config();
  return UNetDenoiser::from_checkpoint(c, kFixtures + "/unet/adm_tiny_trained.pt");
}

struct Case {
  std::string method;
  Options options;
  int64_t forwards;   ///< per batch
  int64_t backwards;  ///< per batch
  double fit_bound;   ///< mean |A(sample) - A(image)| must stay below this
};

/// Mean |A(a) - A(b)| for the case's measurement: the known pixels, or the average pooling.
double measurement_error(const Case& c, const at::Tensor& a, const at::Tensor& b,
                         const at::Tensor& mask) {
  if (c.options.get("mode", "inpaint") == "super_resolution") {
    const int64_t side = a.size(-1) / c.options.get_int("scale");
    return (at::adaptive_avg_pool2d(a, {side, side}) - at::adaptive_avg_pool2d(b, {side, side}))
        .abs()
        .mean()
        .item<double>();
  }
  return ((a - b).abs() * mask).sum().item<double>() / (mask.sum().item<double>() * a.size(1));
}

TEST(BaselinesOnUNet, RunEndToEnd) {
  ASSERT_TRUE(std::filesystem::exists(kFixtures + "/unet/adm_tiny_trained.pt"))
      << "committed fixture missing: tests/fixtures/unet/adm_tiny_trained.pt";
  register_builtin_methods();
  auto model = tiny_unet();
  ASSERT_TRUE(model->learn_sigma());
  const int64_t size = model->image_size();
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor image = (at::rand({1, 3, size, size}, g) * 1.6 - 0.8);
  const at::Tensor mask = half_mask(size, size).unsqueeze(0).to(at::kFloat);
  // Forwards: 7 calls of the 8-step list (t = 7 .. 1, or DDIM 7 -> 0); resample 3 particles of
  // 7; repaint the 14 downward pairs of RePaint's jump list for t_T 8, jump 2 x 2
  // (7 6 5 4 5 6 5 4 3 2 3 4 3 2 1 0 1 2 1 0 -1).
  // Fit bounds: what each case measured on this image (seed 11) with ~30% margin, each below what
  // clamped noise scores (0.72 on the known pixels, 0.16 pooled by 4). Few steps condition
  // weakly: blended, resample and DPS only pull the known region towards the image; DDRM (eta 0)
  // and DPS in super-resolution come out barely better than noise after the clamp.
  const std::vector<Case> cases = {
      {"blended", {{"respacing", "8"}}, 7, 0, 0.4},
      {"resample", {{"respacing", "8"}, {"particles", "3"}}, 21, 0, 0.42},
      {"repaint", {{"respacing", "8"}, {"jump_length", "2"}, {"jump_n_sample", "2"}}, 14, 0, 0.02},
      {"ddnm", {{"respacing", "8"}}, 7, 0, 0.007},
      {"ddnm", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 0, 0.002},
      {"ddrm", {{"respacing", "8"}}, 7, 0, 0.011},
      {"ddrm", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 0, 0.145},
      {"dps", {{"respacing", "8"}}, 7, 7, 0.6},
      {"dps", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 7, 0.16},
  };
  // What an unconditioned sample scores: clamped noise.
  const at::Tensor noise = at::randn(image.sizes(), g).clamp(-1, 1);
  for (const Case& c : cases) {
    auto method = Registry<Method>::global().create(c.method, c.options);
    InpaintInput in;
    in.image = image;
    in.mask = mask;
    in.generators = {at::make_generator<at::CPUGeneratorImpl>(3)};
    const InpaintOutput out = method->run(*model, in);
    SCOPED_TRACE(c.method + " " + c.options.canonical());
    ASSERT_EQ(out.sample.sizes(), image.sizes());
    EXPECT_TRUE(at::isfinite(out.sample).all().item<bool>());
    const double fit = measurement_error(c, out.sample, image, mask);
    std::printf("[%s %s] measurement error %.4f (clamped noise %.4f)\n", c.method.c_str(),
                c.options.get("mode", "inpaint").c_str(), fit,
                measurement_error(c, noise, image, mask));
    EXPECT_LT(fit, c.fit_bound);
    EXPECT_EQ(out.evals.forwards, c.forwards);
    EXPECT_EQ(out.evals.forwards, method->expected_forwards(1000));
    EXPECT_EQ(out.evals.backwards, c.backwards);
  }
}

}  // namespace
}  // namespace copaint
