// How far a CoPaint sample is from its compute bound: UNet forwards x FLOPs per forward plus
// backwards x FLOPs per backward (framework/nn/flops.h) divided by the matmul throughput measured
// in the same process. The benchmark device is CUDA when available, else the CPU.
//  - BM_GemmThroughput: an n x n x n product in the benchmark precision's dtype (float32 through
//    onednn_mm on the CPU, else at::mm).
//  - BM_ConvThroughput: one 3x3 256->256-channel convolution (onednn_conv2d; at::conv2d in
//    bf16/fp16), for comparison.
//  - BM_CoPaintBound_CelebAHQ256: one CoPaint sample (G = 2) with a random-weight UNet of the
//    celebahq256 architecture; CUDA: 256x256 with 250 steps (the paper's setting) and 64x64 with
//    10; CPU: 64x64 with 10 respaced steps (the same network at a 16x smaller map) and 256x256
//    with 2 (minutes on one core).
//  - BM_CoPaintBound_Tiny: the tiny trained fixture UNet (tests/fixtures/unet, 32x32).
// Counters of the CoPaint cases: forwards, backwards, flops_per_forward, flops_per_backward (batch
// 1), gemm_flops_per_s (measured before the run, same threads), bound_seconds, seconds (wall
// time of the sample), ratio = seconds / bound_seconds; conv_flops_per_s and ratio_vs_conv: the
// same with the measured rate of a 3x3 256-channel conv on a 32x32 map instead of the GEMM's
// (oneDNN's direct convolution can beat its GEMM, making that bound the stricter one); on the CPU
// also counted_over_analytic (FlopCounter over the run / the analytic total: 1 when every FLOP
// went through the counted ops).
// Threads: COPAINT_BENCH_THREADS (default: ATen's). Precision: COPAINT_BENCH_PRECISION =
// fp32 (default) | tf32 | bf16 | fp16 (UNetRunOptions::precision of the models; the GEMM of the
// bound then runs in bfloat16 / float16, or with TF32 allowed, so the bound is that precision's).
//   COPAINT_BENCH_THREADS=1 compute_bound_benchmark --benchmark_filter='Gemm|Tiny'
//   COPAINT_BENCH_THREADS=1 compute_bound_benchmark --benchmark_filter=CelebAHQ256/size:64
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "datasets/masks.h"
#include "framework/core/device.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/flops.h"
#include "framework/nn/onednn_ops.h"
#include "framework/nn/unet.h"
#include "methods/copaint.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

using Clock = std::chrono::steady_clock;

using fixtures::bench_device;

void apply_threads(benchmark::State& state) {
  fixtures::apply_bench_threads();
  state.counters["threads"] = at::get_num_threads();
}

/// Waits for the device: a one-element copy to the host runs after all queued work.
void sync(const at::Tensor& t) { benchmark::DoNotOptimize(t.reshape(-1)[0].item<float>()); }

using fixtures::bench_precision;
using fixtures::bench_run_options;

/// The dtype of the UNet's torso (and of the bound's GEMM) at bench_precision().
at::ScalarType bench_dtype() {
  switch (bench_precision()) {
    case Precision::kBf16:
      return at::kBFloat16;
    case Precision::kFp16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

at::Tensor bench_mm(const at::Tensor& a, const at::Tensor& b) {
  return a.is_cuda() || a.scalar_type() != at::kFloat ? at::mm(a, b) : onednn_mm(a, b);
}

/// The GEMM size of the bound: 2048 on the CPU (a 17 GFLOP product), 4096 on CUDA.
int64_t default_gemm_n() { return at::hasCUDA() ? 4096 : 2048; }

/// Best-of-reps n x n x n matmul rate in FLOP/s on `device` in bench_dtype() (float32 with TF32
/// allowed on CUDA at tf32), after one warm-up call.
double gemm_flops_per_s(at::Device device, int64_t n) {
  at::manual_seed(0);
  set_cuda_math(device, bench_precision(), false);
  const auto opts = at::TensorOptions().device(device).dtype(bench_dtype());
  const at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  sync(bench_mm(a, b));
  const int reps = device.is_cuda() ? 20 : 5;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    sync(bench_mm(a, b));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(n) * n * n / s);
  }
  return best;
}

void BM_GemmThroughput(benchmark::State& state) {
  apply_threads(state);
  const int64_t n = state.range(0);
  set_cuda_math(bench_device(), bench_precision(), false);
  const auto opts = at::TensorOptions().device(bench_device()).dtype(bench_dtype());
  at::manual_seed(0);
  const at::Tensor a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  sync(bench_mm(a, b));
  for (auto _ : state) sync(bench_mm(a, b));
  state.counters["flops_per_s"] = benchmark::Counter(
      2.0 * static_cast<double>(n) * n * n * state.iterations(), benchmark::Counter::kIsRate);
}

/// Best-of-reps rate of one 3x3 256->256-channel convolution (batch 1, size x size map) through
/// onednn_conv2d, the UNet's main operation, after one warm-up call.
double conv_flops_per_s(at::Device device, int64_t size) {
  const int64_t ch = 256;
  const auto opts = at::TensorOptions().device(device).dtype(bench_dtype());
  at::manual_seed(0);
  const at::Tensor x = at::randn({1, ch, size, size}, opts);
  const at::Tensor w = at::randn({ch, ch, 3, 3}, opts) * 0.02, b = at::zeros({ch}, opts);
  sync(onednn_conv2d(x, w, b, 1, 1));
  const int reps = device.is_cuda() ? 20 : 5;
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    sync(onednn_conv2d(x, w, b, 1, 1));
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, 2.0 * static_cast<double>(ch * size * size) * ch * 9 / s);
  }
  return best;
}

void BM_ConvThroughput(benchmark::State& state) {
  apply_threads(state);
  const int64_t size = state.range(0), ch = 256;
  const auto opts = at::TensorOptions().device(bench_device()).dtype(bench_dtype());
  at::manual_seed(0);
  const at::Tensor x = at::randn({1, ch, size, size}, opts);
  const at::Tensor w = at::randn({ch, ch, 3, 3}, opts) * 0.02, b = at::zeros({ch}, opts);
  sync(onednn_conv2d(x, w, b, 1, 1));
  for (auto _ : state) sync(onednn_conv2d(x, w, b, 1, 1));
  const double flops = 2.0 * static_cast<double>(ch * size * size) * ch * 9;
  state.counters["flops_per_s"] =
      benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate);
}

/// The celebahq256 architecture for a size x size input: the same blocks and parameters (attention
/// at the same downsampling rates 8, 16, 32), only image_size and the resolutions it resolves
/// rescaled, so that the denoiser accepts size x size images. Random weights (seed 0), one per
/// size, kept.
UNetDenoiser& celebahq256_model(int64_t size) {
  static std::map<int64_t, std::unique_ptr<UNetDenoiser>> cache;
  auto& slot = cache[size];
  if (!slot) {
    UNetConfig c = unet_preset("celebahq256");
    c.channel_mult = "1,1,2,2,4,4";
    const int64_t s = size;
    c.attention_resolutions =
        std::to_string(s / 8) + "," + std::to_string(s / 16) + "," + std::to_string(s / 32);
    c.image_size = static_cast<int>(size);
    at::manual_seed(0);
    slot = std::make_unique<UNetDenoiser>(std::make_shared<UNet>(c), bench_run_options());
    slot->to(bench_device());
  }
  return *slot;
}

/// One CoPaint sample (batch 1, half mask, random image) on `model`, timed against the bound.
void run_bound(benchmark::State& state, UNetDenoiser& model, int64_t steps) {
  const at::Device device = bench_device();
  const UNetConfig& config = model.unet().config();
  const int64_t size = config.image_size, batch = 1;
  const double fwd = unet_forward_flops(config, batch, size, size);
  const double bwd = unet_backward_to_input_flops(config, batch, size, size);
  const double gemm = gemm_flops_per_s(device, default_gemm_n());
  const double conv = conv_flops_per_s(device, 32);

  CoPaintParams params;  // the paper's CoPaint: G = 2, adaptive and smart lr
  params.respacing = std::to_string(steps);
  params.G = 2;
  CoPaint method(params);
  at::manual_seed(1);
  InpaintInput in;
  in.image = (at::rand({batch, config.in_channels, size, size}) * 2 - 1).to(device);
  in.mask = half_mask(size, size).unsqueeze(0).to(device);
  in.generators = {at::make_generator<at::CPUGeneratorImpl>(0)};
  {  // warm-up forward and backward (kernel selection, allocator), not timed
    const at::Tensor x = in.image.clone().requires_grad_(true);
    const at::Tensor t =
        at::full({batch}, 500, at::TensorOptions().device(device).dtype(at::kLong));
    sync(torch::autograd::grad({model.forward(x, t, {}).square().sum()}, {x})[0]);
  }

  double seconds = 0, counted = 0;
  EvalCounter evals;
  for (auto _ : state) {
    // Counting on the CPU only (on CUDA the attention is not counted, and the ATen-path hooks
    // would cost a little).
    const auto t0 = Clock::now();
    auto counter = device.is_cuda() ? nullptr : std::make_unique<FlopCounter>();
    const InpaintOutput out = method.run(model, in);
    sync(out.sample);
    seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    counted = counter ? static_cast<double>(counter->flops()) : 0.0;
    evals = out.evals;
  }
  const double total =
      static_cast<double>(evals.forwards) * fwd + static_cast<double>(evals.backwards) * bwd;
  const double bound = total / gemm;
  state.SetLabel(precision_name(bench_precision()));
  state.counters["forwards"] = static_cast<double>(evals.forwards);
  state.counters["backwards"] = static_cast<double>(evals.backwards);
  state.counters["flops_per_forward"] = fwd;
  state.counters["flops_per_backward"] = bwd;
  state.counters["gemm_flops_per_s"] = gemm;
  state.counters["achieved_flops_per_s"] = total / seconds;
  state.counters["bound_seconds"] = bound;
  state.counters["seconds"] = seconds;
  state.counters["ratio"] = seconds / bound;
  state.counters["conv_flops_per_s"] = conv;
  state.counters["ratio_vs_conv"] = seconds / (total / conv);
  // On CUDA the attention (conv1d, einsum) does not go through the counted ops, nor does any
  // bf16/fp16 attention.
  if (!device.is_cuda() && bench_dtype() == at::kFloat)
    state.counters["counted_over_analytic"] = counted / total;
}

void BM_CoPaintBound_CelebAHQ256(benchmark::State& state) {
  apply_threads(state);
  run_bound(state, celebahq256_model(state.range(0)), state.range(1));
}

void BM_CoPaintBound_Tiny(benchmark::State& state) {
  if (!fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return;
  }
  apply_threads(state);
  static std::unique_ptr<UNetDenoiser> model = [] {
    auto net = std::make_shared<UNet>(fixtures::tiny_config());
    net->load(fixtures::tiny_model().unet().named_parameters());
    auto d = std::make_unique<UNetDenoiser>(net, bench_run_options());
    d->to(bench_device());
    return d;
  }();
  run_bound(state, *model, state.range(0));
}

const bool kRegistered = [] {
  benchmark::RegisterBenchmark("BM_GemmThroughput", BM_GemmThroughput)
      ->ArgName("n")
      ->Arg(1024)
      ->Arg(2048)
      ->Arg(4096)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("BM_ConvThroughput", BM_ConvThroughput)
      ->ArgName("size")
      ->Arg(32)
      ->Arg(64)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  auto* celeba =
      benchmark::RegisterBenchmark("BM_CoPaintBound_CelebAHQ256", BM_CoPaintBound_CelebAHQ256);
  // 256x256 with 2 respaced steps: the paper's maps at a cost the CPU can pay (minutes).
  celeba->ArgNames({"size", "steps"})->Args({64, 10})->Args({256, 2});
  // On a GPU: the paper's 250 steps, and 10 steps for the GPU check (scripts/gpu_check.sh).
  if (at::hasCUDA()) celeba->Args({256, 250})->Args({256, 10});
  celeba->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  benchmark::RegisterBenchmark("BM_CoPaintBound_Tiny", BM_CoPaintBound_Tiny)
      ->ArgName("steps")
      ->Arg(25)
      ->Arg(250)
      ->Iterations(1)
      ->Unit(benchmark::kSecond)
      ->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace copaint
