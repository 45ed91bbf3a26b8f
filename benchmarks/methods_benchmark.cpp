// Google Benchmark of every registered method: one whole sample on the tiny trained UNet
// (tests/fixtures/unet, 32x32) with 25 respaced steps, reporting UNet forwards and backwards per
// sample next to the time.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include <algorithm>

#include "datasets/masks.h"
#include "framework/core/registry.h"
#include "methods/method.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

void BM_MethodSample(benchmark::State& state, const std::string& name) {
  if (!fixtures::fixture_exists("unet/adm_tiny_trained.pt")) {
    state.SkipWithError("tests/fixtures/unet/adm_tiny_trained.pt missing");
    return;
  }
  const auto& entry = Registry<Method>::global().at(name);
  Options options;
  const bool has_respacing = std::any_of(entry.options.begin(), entry.options.end(),
                                         [](const OptionSpec& o) { return o.key == "respacing"; });
  if (has_respacing) options.set("respacing", "25");
  if (name == "copaint_tt") options.set("jump_length", "5");
  if (name == "copaint_fast") options.set("steps", "10");  // its 100-of-250 ratio, at 25 steps
  auto method = Registry<Method>::global().create(name, options);
  Denoiser& model = fixtures::tiny_model();
  const at::Tensor image = at::zeros({1, 3, 32, 32});
  const at::Tensor mask = half_mask(32, 32).unsqueeze(0);
  EvalCounter evals;
  int64_t samples = 0;
  for (auto _ : state) {
    InpaintInput in;
    in.image = image;
    in.mask = mask;
    in.generators = {at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(samples))};
    InpaintOutput out;
    try {
      out = method->run(model, in);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
    evals.forwards += out.evals.forwards;
    evals.backwards += out.evals.backwards;
    ++samples;
  }
  state.counters["forwards/sample"] =
      static_cast<double>(evals.forwards) / std::max<int64_t>(1, samples);
  state.counters["backwards/sample"] =
      static_cast<double>(evals.backwards) / std::max<int64_t>(1, samples);
}

const bool kRegistered = [] {
  register_builtin_methods();
  for (const auto& name : Registry<Method>::global().names()) {
    benchmark::RegisterBenchmark(("BM_MethodSample/" + name).c_str(), BM_MethodSample, name)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1);
  }
  return true;
}();

}  // namespace
}  // namespace copaint
