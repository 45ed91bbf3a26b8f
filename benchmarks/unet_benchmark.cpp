// UNet forward and forward+backward-to-input timings on the celebahq256 architecture (random
// weights), at 64x64 and 256x256, batch 1/2/4/8, on the default device (CUDA when available);
// and on the CPU with the tiny trained fixture model (32x32, 2M parameters, what the CoPaint
// parity tests run), batch 1/2/4/8, with 1 and 2 intra-op threads, with the oneDNN routing of
// framework/onednn_ops.h off (plain ATen: the speed before it) and on.
// Every case reports flops (analytic FLOPs of one iteration, framework/flops.h: the forward, or
// forward plus backward to the input) and flops_per_s (their rate over the measured time).
//   unet_benchmark --benchmark_filter='/size:64/' --benchmark_min_time=0.01
//   unet_benchmark --benchmark_filter='Tiny.*threads:1'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <memory>

#include "framework/flops.h"
#include "framework/unet.h"
#include "tests/tiny_fixtures.h"

namespace {

at::Device bench_device() { return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU); }

/// flops: analytic FLOPs of one iteration (a forward, plus the backward to x with `backward`) of
/// `net` on [batch, C, size, size]; flops_per_s: their rate over the real time.
void set_flop_counters(benchmark::State& state, const copaint::UNet& net, int64_t batch,
                       int64_t size, bool backward) {
  const auto& c = net.config();
  double flops = copaint::unet_forward_flops(c, batch, size, size);
  if (backward) flops += copaint::unet_backward_to_input_flops(c, batch, size, size);
  state.counters["flops"] = flops;
  state.counters["flops_per_s"] = benchmark::Counter(
      flops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

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
  set_flop_counters(state, net, batch, size, false);
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
  set_flop_counters(state, net, batch, size, true);
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
  set_flop_counters(state, net, batch, 32, false);
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
  set_flop_counters(state, net, batch, 32, true);
}

}  // namespace

BENCHMARK(BM_TinyUNetForward)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4, 8}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_TinyUNetForwardBackwardToInput)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4, 8}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UNetForward)
    ->ArgNames({"size", "batch"})
    ->ArgsProduct({{64, 256}, {1, 2, 4, 8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UNetForwardBackwardToInput)
    ->ArgNames({"size", "batch"})
    ->ArgsProduct({{64, 256}, {1, 2, 4, 8}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
