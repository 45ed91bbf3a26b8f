// The bundled model: its weights load through model.ini, and on 16 Fashion-MNIST test images
// CoPaint's inpaintings of the right half beat a trivial fill (the known region's mean) on PSNR
// of the unknown region.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "datasets/dataset.h"
#include "datasets/masks.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/config.h"
#include "framework/core/registry.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "metrics/image_metrics.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kBundled = std::string(COPAINT_SOURCE_DIR) + "/experiments/bundled";

std::unique_ptr<Denoiser> bundled_model() {
  Options settings = load_ini_file(kBundled + "/model.ini");
  settings.set("adm.checkpoint", kBundled + "/fashion_mnist_adm.pt");
  return create_model("adm", settings);
}

TEST(BundledModel, LoadsThroughItsModelIni) {
  register_all();
  auto model = bundled_model();
  EXPECT_EQ(model->image_size(), 32);
  EXPECT_EQ(model->channels(), 3);
  at::NoGradGuard no_grad;
  const at::Tensor out =
      model->forward(at::zeros({1, 3, 32, 32}), at::full({1}, 500, at::kLong), {});
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  EXPECT_TRUE(out.isfinite().all().item<bool>());
}

TEST(BundledModel, CoPaintBeatsTrivialFillOnHalfMask) {
  register_all();
  std::unique_ptr<Dataset> data;
  try {
    data = Registry<Dataset>::global().create("fashion_mnist", Options{{"count", "16"}});
  } catch (const std::exception& e) {
    GTEST_SKIP() << "Fashion-MNIST unavailable (scripts/setup.sh installs dataset-fashion-mnist): "
                 << e.what();
  }
  auto model = bundled_model();
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < 16; ++i) images.push_back(data->get(i).image);
  const at::Tensor x0 = at::stack(images);
  const at::Tensor mask = half_mask(32, 32).unsqueeze(0);
  auto method =
      Registry<Method>::global().create("copaint", Options{{"respacing", "25"}, {"G", "2"}});
  InpaintInput in;
  in.image = x0;
  in.mask = mask;
  for (int64_t i = 0; i < 16; ++i)
    in.generators.push_back(at::make_generator<at::CPUGeneratorImpl>(i));
  const at::Tensor samples = method->run(*model, in).sample;
  // Trivial fill: every unknown pixel gets the mean of the image's known pixels.
  const at::Tensor known_mean = (x0 * mask).sum({1, 2, 3}, true) / (mask.sum() * 3);
  const at::Tensor trivial = x0 * mask + known_mean * (1 - mask);
  const double ours = psnr_masked(samples, x0, mask.expand({16, -1, -1, -1})).mean().item<double>();
  const double fill = psnr_masked(trivial, x0, mask.expand({16, -1, -1, -1})).mean().item<double>();
  std::printf(
      "unknown-region PSNR on 16 images, half mask: copaint %.2f dB, known-mean fill %.2f dB\n",
      ours, fill);
  EXPECT_GT(ours, fill);
}

}  // namespace
}  // namespace copaint
