// Google Benchmark of the metrics: LPIPS (alex, squeeze, vgg; random weights of the real shapes),
// PSNR and SSIM on batches of 256x256 images, the FID Inception's features (formula weights of
// the real shapes; every input is resized to 299x299) and FID/KID of 100 vs 100 features.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/GradMode.h>

#include "metrics/fid.h"
#include "metrics/image_metrics.h"
#include "metrics/inception.h"
#include "metrics/lpips.h"

namespace copaint {
namespace {

// An Lpips with seeded random weights of the real shapes (timing needs no trained weights).
Lpips random_lpips(const std::string& backbone) {
  at::manual_seed(0);
  LpipsTensors trunk, heads;
  for (const auto& [name, shape] : lpips_trunk_shapes(backbone)) {
    trunk.emplace_back(name, at::randn(shape) * 0.05);
  }
  const auto channels = lpips_head_channels(backbone);
  for (size_t i = 0; i < channels.size(); ++i) {
    heads.emplace_back("lin" + std::to_string(i) + ".model.1.weight",
                       at::rand({1, channels[i], 1, 1}));
  }
  return Lpips(backbone, heads, trunk);
}

void BM_Lpips(benchmark::State& state, const std::string& backbone) {
  const Lpips lpips = random_lpips(backbone);
  const int64_t batch = state.range(0);
  const at::Tensor a = at::rand({batch, 3, 256, 256}) * 2 - 1;
  const at::Tensor b = at::rand({batch, 3, 256, 256}) * 2 - 1;
  at::NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(lpips(a, b));
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Lpips, alex, std::string("alex"))->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Lpips, squeeze, std::string("squeeze"))->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Lpips, vgg, std::string("vgg"))->Arg(8)->Unit(benchmark::kMillisecond);

void BM_PsnrSsim(benchmark::State& state) {
  const at::Tensor a = at::rand({8, 3, 256, 256}) * 2 - 1;
  const at::Tensor b = at::rand({1, 3, 256, 256}) * 2 - 1;
  for (auto _ : state) {
    benchmark::DoNotOptimize(psnr(a, b));
    benchmark::DoNotOptimize(ssim(a, b));
  }
}
BENCHMARK(BM_PsnrSsim)->Unit(benchmark::kMillisecond);

void BM_FidInceptionFeatures(benchmark::State& state) {
  static const FidInception network(fid_inception_formula_weights(), "formula weights");
  const int64_t batch = state.range(0), size = state.range(1);
  const at::Tensor images = at::rand({batch, 3, size, size}) * 2 - 1;
  for (auto _ : state) benchmark::DoNotOptimize(network.features(images));
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FidInceptionFeatures)
    ->Args({4, 64})
    ->Args({4, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The per-cell reduction of the 100-image protocol: 100 sample vs 100 reference features.
void BM_FidKidScore(benchmark::State& state) {
  const at::Tensor a = 2.0 * formula_uniform_tensor("bench.a", {100, 2048}).pow(2);
  const at::Tensor b = 2.0 * formula_uniform_tensor("bench.b", {100, 2048}).pow(2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frechet_distance_of_features(a, b));
    benchmark::DoNotOptimize(kernel_inception_distance(a, b, KidParams{}));
  }
}
BENCHMARK(BM_FidKidScore)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace copaint
