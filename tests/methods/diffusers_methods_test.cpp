// Every method end to end on a diffusers UNet2DModel (the attn_all fixture of
// tests/fixtures/diffusers/, seeded weights, 16x16 RGB) with a few steps: the schedule comes from
// the model's scheduler config, RePaint's variance from its variance_type, CoPaint and DPS
// differentiate through it; samples are finite, the replacement and projection methods keep the
// known pixels closer to the image than noise does (the gradient methods are not held to that:
// with random weights and 4-10 steps CoPaint-Fast and DPS measured 0.79 and 0.81 against noise's
// 0.70), and only CoPaint and DPS run backward passes.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "datasets/masks.h"
#include "framework/core/registry.h"
#include "framework/nn/diffusers_unet.h"
#include "methods/method.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string method;
  Options options;
};

TEST(MethodsOnDiffusersModel, AllNineRun) {
  const std::string fixtures = std::string(COPAINT_TEST_FIXTURES_DIR) + "/diffusers/";
  // The model with a DDIMScheduler config of its own (linear betas, leading spacing, clip).
  const fs::path dir =
      fs::temp_directory_path() / ("diffusers_methods_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::copy(fixtures + "attn_all", dir, fs::copy_options::recursive);
  fs::copy_file(fixtures + "ddim_leading/scheduler_config.json", dir / "scheduler_config.json");
  auto model = DiffusersDenoiser::from_folder(dir.string());
  fs::remove_all(dir);
  register_builtin_methods();

  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor image = at::rand({1, 3, 16, 16}, g) * 1.6 - 0.8;
  const at::Tensor mask = half_mask(16, 16).unsqueeze(0).to(at::kFloat);
  const at::Tensor noise = at::randn(image.sizes(), g).clamp(-1, 1);
  const auto known_error = [&](const at::Tensor& x) {
    return ((x - image).abs() * mask).sum().item<double>() / (mask.sum().item<double>() * 3);
  };
  const std::vector<Case> cases = {
      {"copaint", {{"respacing", "leading10"}, {"G", "1"}}},
      {"copaint_tt",
       {{"respacing", "6"}, {"G", "1"}, {"jump_length", "2"}, {"jump_n_sample", "2"}}},
      {"copaint_fast", {{"respacing", "8"}, {"steps", "4"}}},
      {"blended", {{"respacing", "trailing8"}}},
      {"resample", {{"respacing", "8"}, {"particles", "2"}}},
      {"repaint", {{"respacing", "8"}, {"jump_length", "2"}, {"jump_n_sample", "2"}}},
      {"ddnm", {{"respacing", "8"}}},
      {"ddrm", {{"respacing", "8"}}},
      {"dps", {{"respacing", "8"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.options.canonical());
    auto method = Registry<Method>::global().create(c.method, c.options);
    InpaintInput in;
    in.image = image;
    in.mask = mask;
    in.generators = {at::make_generator<at::CPUGeneratorImpl>(3)};
    const InpaintOutput out = method->run(*model, in);
    ASSERT_EQ(out.sample.sizes(), image.sizes());
    EXPECT_TRUE(at::isfinite(out.sample).all().item<bool>());
    const double fit = known_error(out.sample);
    std::printf("[%s] known-pixel error %.4f (clamped noise %.4f), %lld forwards, %lld backwards\n",
                c.method.c_str(), fit, known_error(noise),
                static_cast<long long>(out.evals.forwards),
                static_cast<long long>(out.evals.backwards));
    const bool gradients = c.method.rfind("copaint", 0) == 0 || c.method == "dps";
    if (!gradients) EXPECT_LT(fit, known_error(noise));
    EXPECT_GT(out.evals.forwards, 0);
    EXPECT_EQ(out.evals.backwards > 0, gradients);
  }
}

}  // namespace
}  // namespace copaint
