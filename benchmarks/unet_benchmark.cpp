// UNet forward and forward+backward-to-input timings on the celebahq256 architecture (random
// weights), at 64x64 and 256x256, batch 1 and 4, on the default device (CUDA when available);
// and on the CPU with the tiny trained fixture model (32x32, 2M parameters, what the CoPaint
// parity tests run), batch 1/2/4, with 1 and 2 intra-op threads, with the oneDNN routing of
// framework/onednn_ops.h off (plain ATen: the speed before it) and on.
//   unet_benchmark --benchmark_filter='/64/' --benchmark_min_time=0.01
//   unet_benchmark --benchmark_filter='Tiny.*threads:1'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <memory>

#include "tests/tiny_fixtures.h"
#include "framework/unet.h"

namespace {

at::Device bench_device() { return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

/// One shared 552M-parameter model (2.2 GB), built on first use.
const copaint::UNet& model() {
  static std::unique_ptr<copaint::UNet> net = [] {
    at::manual_seed(0);
    auto n = std::make_unique<copaint::UNet>(copaint::unet_preset("celebahq256"));
    n->to(bench_device());
    return n;
  }();
  return *net;
}

void BM_UNetForward(benchmark::State& state) {
  const int64_t size = state.range(0), batch = state.range(1);
  const copaint::UNet& net = model();
  const auto opts = at::TensorOptions().device(bench_device());
  const at::Tensor x = at::randn({batch, 3, size, size}, opts);
  const at::Tensor t = at::full({batch}, 500, opts.dtype(at::kLong));
  at::NoGradGuard no_grad;
  for (auto _ : state) {
    at::Tensor out = net.forward(x, t);
    benchmark::DoNotOptimize(out.sum().item<float>());  // .item() also waits for CUDA
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["params"] = static_cast<double>(net.parameter_count());
}

void BM_UNetForwardBackwardToInput(benchmark::State& state) {
  const int64_t size = state.range(0), batch = state.range(1);
  const copaint::UNet& net = model();
  const auto opts = at::TensorOptions().device(bench_device());
  const at::Tensor x0 = at::randn({batch, 3, size, size}, opts);
  const at::Tensor t = at::full({batch}, 500, opts.dtype(at::kLong));
  for (auto _ : state) {
    const at::Tensor x = x0.detach().requires_grad_(true);
    const at::Tensor loss = net.forward(x, t).square().sum();
    const auto grads = torch::autograd::grad({loss}, {x});
    benchmark::DoNotOptimize(grads[0].sum().item<float>());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_TinyUNetForward(benchmark::State& state) {
  if (!copaint::fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return;
  }
  const int64_t batch = state.range(0);
  const copaint::fixtures::BenchSettings settings(state.range(1), state.range(2));
  const copaint::UNet& net = copaint::fixtures::tiny_model().unet();
  at::manual_seed(0);
  const at::Tensor x = at::randn({batch, 3, 32, 32});
  const at::Tensor t = at::full({batch}, 500, at::kLong);
  at::NoGradGuard no_grad;
  for (auto _ : state) {
    at::Tensor out = net.forward(x, t);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_TinyUNetForwardBackwardToInput(benchmark::State& state) {
  if (!copaint::fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return;
  }
  const int64_t batch = state.range(0);
  const copaint::fixtures::BenchSettings settings(state.range(1), state.range(2));
  const copaint::UNet& net = copaint::fixtures::tiny_model().unet();
  at::manual_seed(0);
  const at::Tensor x0 = at::randn({batch, 3, 32, 32});
  const at::Tensor t = at::full({batch}, 500, at::kLong);
  for (auto _ : state) {
    const at::Tensor x = x0.detach().requires_grad_(true);
    const at::Tensor loss = net.forward(x, t).square().sum();
    const auto grads = torch::autograd::grad({loss}, {x});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

}  // namespace

BENCHMARK(BM_TinyUNetForward)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_TinyUNetForwardBackwardToInput)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UNetForward)
    ->ArgNames({"size", "batch"})
    ->Args({64, 1})
    ->Args({64, 4})
    ->Args({256, 1})
    ->Args({256, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UNetForwardBackwardToInput)
    ->ArgNames({"size", "batch"})
    ->Args({64, 1})
    ->Args({64, 4})
    ->Args({256, 1})
    ->Args({256, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
