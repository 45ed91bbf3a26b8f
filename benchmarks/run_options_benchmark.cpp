// Google Benchmark of the UNet run options (framework/nn/denoisers.h UNetRunOptions) against the
// default on the same model in one process: fp32, bf16 torso, channels-last, activation
// checkpointing and the frozen-conv backward weight cache (forward+backward only), and no-grad vs
// InferenceMode forwards. Models: the tiny trained fixture UNet at 32x32 and the celebahq256
// architecture (random weights) at 64x64.
//   run_options_benchmark --benchmark_filter=Tiny
//   COPAINT_BENCH_THREADS=1 run_options_benchmark --benchmark_filter='Paper.*fp32|Paper.*bf16'
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <memory>
#include <string>

#include "framework/core/torch_compat.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/onednn_ops.h"
#include "framework/nn/unet.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

using fixtures::bench_device;

UNetRunOptions variant_options(const std::string& variant) {
  UNetRunOptions o;
  if (variant == "bf16") o.precision = Precision::kBf16;
  if (variant == "tf32") o.precision = Precision::kTf32;
  if (variant == "fp16") o.precision = Precision::kFp16;
  if (variant == "channels_last") o.channels_last = true;
  if (variant == "checkpoint") o.grad_checkpoint = true;
  if (variant == "cudnn_benchmark") o.cudnn_benchmark = true;
  return o;
}

/// The denoiser of (model, variant). Only one is alive at a time: with two models in memory the
/// second measured ~30% slower on the CPU whatever its variant (cache and allocator effects), which
/// would bias the comparison by registration order.
UNetDenoiser& denoiser(const std::string& model, const std::string& variant) {
  static std::string key;
  static std::unique_ptr<UNetDenoiser> slot;
  if (key != model + "/" + variant) {
    slot.reset();
    key = model + "/" + variant;
    std::shared_ptr<UNet> net;
    if (model == "tiny") {
      net = std::make_shared<UNet>(fixtures::tiny_config());
      net->load(fixtures::tiny_model().unet().named_parameters());
    } else {
      at::manual_seed(0);
      net = std::make_shared<UNet>(unet_preset("celebahq256"));
    }
    slot = std::make_unique<UNetDenoiser>(net, variant_options(variant));
    slot->to(bench_device());
  }
  return *slot;
}

struct Case {
  std::string model, variant;
  int64_t size, batch;
  bool backward;
};

void BM_UNetRunOption(benchmark::State& state, const Case& c) {
  fixtures::apply_bench_threads();
  if (c.model == "tiny" && !fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return;
  }
  if (c.variant == "fp16" && !bench_device().is_cuda()) {
    state.SkipWithError("fp16 needs CUDA");
    return;
  }
  // "no_backward_cache": the frozen-conv input gradient rebuilds its flipped weights every call.
  set_onednn_backward_cache_limit(c.variant == "no_backward_cache" ? 0 : int64_t{4} << 30);
  UNetDenoiser& d = denoiser(c.model, c.variant);
  const auto opts = at::TensorOptions().device(bench_device());
  at::manual_seed(1);
  const at::Tensor x0 = at::randn({c.batch, 3, c.size, c.size}, opts);
  const at::Tensor t = at::full({c.batch}, 500, opts.dtype(at::kLong));
  // One untimed pass first: oneDNN primitive creation and the backward weight cache fill (a
  // one-off cost that would dominate single-iteration cases of the big model).
  {
    const at::Tensor x = x0.detach().requires_grad_(c.backward);
    const at::Tensor out = d.forward(x, t, {});
    if (c.backward) torch::autograd::grad({out.square().sum()}, {x});
  }
  cuda_reset_peak_memory(bench_device());
  for (auto _ : state) {
    if (c.backward) {
      const at::Tensor x = x0.detach().requires_grad_(true);
      const at::Tensor loss = d.forward(x, t, {}).square().sum();
      benchmark::DoNotOptimize(torch::autograd::grad({loss}, {x})[0].sum().item<float>());
    } else if (c.variant == "inference_mode") {
      c10::InferenceMode guard;
      benchmark::DoNotOptimize(d.forward(x0, t, {}).sum().item<float>());
    } else {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(d.forward(x0, t, {}).sum().item<float>());
    }
  }
  state.SetItemsProcessed(state.iterations() * c.batch);
  state.counters["threads"] = at::get_num_threads();
  if (bench_device().is_cuda()) {
    state.counters["peak_bytes"] = static_cast<double>(cuda_peak_memory_bytes(bench_device()));
  }
}

const bool kRegistered = [] {
  const auto add = [](const Case& c) {
    const std::string name = std::string(c.model == "tiny" ? "Tiny" : "Paper") +
                             (c.backward ? "ForwardBackward" : "Forward") + "/" + c.variant +
                             "/size:" + std::to_string(c.size) +
                             "/batch:" + std::to_string(c.batch);
    benchmark::RegisterBenchmark(("BM_UNetRunOption/" + name).c_str(), BM_UNetRunOption, c)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  for (int64_t batch : {1, 4}) {
    for (const char* v : {"fp32", "inference_mode", "bf16", "channels_last"}) {
      add({"tiny", v, 32, batch, false});
    }
    for (const char* v : {"fp32", "no_backward_cache", "bf16", "channels_last", "checkpoint"}) {
      add({"tiny", v, 32, batch, true});
    }
  }
  for (const char* v : {"fp32", "inference_mode", "tf32", "bf16", "fp16", "channels_last"}) {
    add({"paper", v, 64, 1, false});
  }
  for (const char* v :
       {"fp32", "no_backward_cache", "tf32", "bf16", "fp16", "channels_last", "checkpoint"}) {
    add({"paper", v, 64, 1, true});
  }
  // The paper's resolution (tens of seconds per pass on a CPU core): time and, run one at a
  // time under /usr/bin/time, the peak memory with and without checkpointing. On a GPU: every
  // option at batch 1, 4 and 8 (variant outer, so each model is built once).
  if (!at::hasCUDA()) {
    for (const char* v : {"fp32", "bf16", "checkpoint"}) add({"paper", v, 256, 1, true});
    return true;
  }
  for (const char* v :
       {"fp32", "tf32", "fp16", "bf16", "channels_last", "cudnn_benchmark", "checkpoint"}) {
    for (int64_t batch : {1, 4, 8}) add({"paper", v, 256, batch, true});
  }
  return true;
}();

}  // namespace
}  // namespace copaint
