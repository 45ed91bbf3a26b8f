// Every baseline end to end on the tiny trained ADM UNet (learn_sigma: 2C output channels, RGB
// 32x32) with a short respacing: the variance channels, autograd through the network (DPS) and
// super-resolution modes run, outputs are finite and in range, and evaluations are counted.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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
};

TEST(BaselinesOnUNet, RunEndToEnd) {
  if (!std::filesystem::exists(kFixtures + "/unet/adm_tiny_trained.pt")) {
    GTEST_SKIP() << "tiny UNet fixture absent";
  }
  register_builtin_methods();
  auto model = tiny_unet();
  ASSERT_TRUE(model->learn_sigma());
  const int64_t size = model->image_size();
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor image = (at::rand({1, 3, size, size}, g) * 1.6 - 0.8);
  const at::Tensor mask = half_mask(size, size).unsqueeze(0).to(at::kFloat);
  const std::vector<Case> cases = {
      {"blended", {{"respacing", "8"}}, 7, 0},
      {"resample", {{"respacing", "8"}, {"particles", "3"}}, 21, 0},
      {"repaint", {{"respacing", "8"}, {"jump_length", "2"}, {"jump_n_sample", "2"}}, -1, 0},
      {"ddnm", {{"respacing", "8"}}, 7, 0},
      {"ddnm", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 0},
      {"ddrm", {{"respacing", "8"}}, 7, 0},
      {"ddrm", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 0},
      {"dps", {{"respacing", "8"}}, 7, 7},
      {"dps", {{"respacing", "8"}, {"mode", "super_resolution"}, {"scale", "4"}}, 7, 7},
  };
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
    EXPECT_LE(out.sample.abs().max().item<double>(), 1.0);
    EXPECT_EQ(out.evals.forwards, c.forwards >= 0 ? c.forwards : method->expected_forwards(1000));
    EXPECT_EQ(out.evals.forwards, method->expected_forwards(1000));
    EXPECT_EQ(out.evals.backwards, c.backwards);
  }
}

}  // namespace
}  // namespace copaint
