// UNet forward and forward+backward-to-input timings on the celebahq256 architecture (random
// weights), at 64x64 and 256x256, batch 1/2/4/8, on the default device (CUDA when available);
// and on the CPU with the tiny trained fixture model (32x32, 2M parameters, what the CoPaint
// parity tests run), batch 1/2/4/8, with 1 and 2 intra-op threads, with the oneDNN routing of
// framework/nn/onednn_ops.h off (plain ATen: the speed before it) and on; and the bundled model
// (experiments/bundled, 32x32 Fashion-MNIST), batch 1/2/4/8, 1 and 2 threads.
// Every case reports flops (analytic FLOPs of one iteration, framework/nn/flops.h: the forward, or
// forward plus backward to the input) and flops_per_s (their rate over the measured time).
//   unet_benchmark --benchmark_filter='/size:64/' --benchmark_min_time=0.01
//   unet_benchmark --benchmark_filter='Tiny.*threads:1'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <fstream>
#include <memory>
#include <string>

#include "framework/checkpoint/checkpoint.h"
#include "framework/nn/flops.h"
#include "framework/nn/unet.h"
#include "tests/test_paths.h"
#include "tests/tiny_fixtures.h"

namespace {

using copaint::fixtures::bench_device;

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

/// The bundled model (experiments/bundled: the 32x32 Fashion-MNIST ADM of the quickstart, the
/// architecture of experiments/bundled/model.ini), loaded once; null when the file is missing.
const copaint::UNet* bundled_model() {
  static std::unique_ptr<copaint::UNet> net = []() -> std::unique_ptr<copaint::UNet> {
    const std::string path =
        std::string(COPAINT_TEST_FIXTURES_DIR) + "/../../experiments/bundled/fashion_mnist_adm.pt";
    if (!std::ifstream(path).good()) return nullptr;
    copaint::UNetConfig c;
    c.image_size = 32;
    c.num_channels = 32;
    c.num_res_blocks = 2;
    c.channel_mult = "1,2,2";
    c.attention_resolutions = "16,8";
    c.num_head_channels = 16;
    c.resblock_updown = true;
    auto n = std::make_unique<copaint::UNet>(c);
    n->load(copaint::load_state_dict(path));
    return n;
  }();
  return net.get();
}

/// The 32x32 model of a small-model case: the tiny fixture (which = 0) or the bundled one (1).
const copaint::UNet* small_model(benchmark::State& state, int64_t which) {
  if (which == 1) {
    if (!bundled_model()) state.SkipWithError("experiments/bundled/fashion_mnist_adm.pt missing");
    return bundled_model();
  }
  if (!copaint::fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return nullptr;
  }
  return &copaint::fixtures::tiny_model().unet();
}

void small_forward(benchmark::State& state, int64_t which) {
  const copaint::UNet* net = small_model(state, which);
  if (!net) return;
  const int64_t batch = state.range(0);
  const copaint::fixtures::BenchSettings settings(state.range(1), state.range(2));
  at::manual_seed(0);
  const at::Tensor x = at::randn({batch, 3, 32, 32});
  const at::Tensor t = at::full({batch}, 500, at::kLong);
  at::NoGradGuard no_grad;
  for (auto _ : state) {
    at::Tensor out = net->forward(x, t);
    benchmark::DoNotOptimize(out.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  set_flop_counters(state, *net, batch, 32, false);
}

void small_forward_backward(benchmark::State& state, int64_t which) {
  const copaint::UNet* net = small_model(state, which);
  if (!net) return;
  const int64_t batch = state.range(0);
  const copaint::fixtures::BenchSettings settings(state.range(1), state.range(2));
  at::manual_seed(0);
  const at::Tensor x0 = at::randn({batch, 3, 32, 32});
  const at::Tensor t = at::full({batch}, 500, at::kLong);
  for (auto _ : state) {
    const at::Tensor x = x0.detach().requires_grad_(true);
    const at::Tensor loss = net->forward(x, t).square().sum();
    const auto grads = torch::autograd::grad({loss}, {x});
    benchmark::DoNotOptimize(grads[0].data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  set_flop_counters(state, *net, batch, 32, true);
}

void BM_TinyUNetForward(benchmark::State& state) { small_forward(state, 0); }
void BM_TinyUNetForwardBackwardToInput(benchmark::State& state) {
  small_forward_backward(state, 0);
}
void BM_BundledUNetForward(benchmark::State& state) { small_forward(state, 1); }
void BM_BundledUNetForwardBackwardToInput(benchmark::State& state) {
  small_forward_backward(state, 1);
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
BENCHMARK(BM_BundledUNetForward)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4, 8}, {1, 2}, {1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_BundledUNetForwardBackwardToInput)
    ->ArgNames({"batch", "threads", "onednn"})
    ->ArgsProduct({{1, 2, 4, 8}, {1, 2}, {1}})
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
