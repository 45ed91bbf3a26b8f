// Our side of the race against the reference (scripts/race_reference.py, run side by side by
// scripts/gpu_check.sh): one inpainting sample, batch 1, half mask, random image, on a
// random-weight UNet whose architecture is read from the same JSON the reference script builds
// its model from ({"config": {create_model's arguments}}), after one untimed warm-up sample.
//  - BM_Race/copaint: CoPaint with the paper's settings (G = 2, adaptive and smart learning rate)
//  - BM_Race/ddnm: DDNM (the reference's update)
// Environment: COPAINT_RACE_CONFIG (default tests/fixtures/unet/adm_tiny_config.json),
// COPAINT_RACE_STEPS (respaced steps, default 25), COPAINT_BENCH_PRECISION (fp32 | tf32 | bf16 |
// fp16), COPAINT_BENCH_THREADS. Counters: seconds (the timed sample), forwards, backwards.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "datasets/masks.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/unet.h"
#include "methods/copaint.h"
#include "methods/ddnm.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

/// The race's model: the config file's architecture, every parameter drawn from N(0, 0.02) as the
/// reference script does (seeded; the two sides' weights differ, their cost does not).
UNetDenoiser& race_model() {
  static std::unique_ptr<UNetDenoiser> model = [] {
    const std::string path =
        env_or("COPAINT_RACE_CONFIG", fixtures::kFixtures + "/unet/adm_tiny_config.json");
    auto net =
        std::make_shared<UNet>(unet_config_from_json(fixtures::load_json(path).at("config")));
    at::manual_seed(0);
    {
      at::NoGradGuard no_grad;
      for (auto& p : net->parameters()) p.normal_(0.0, 0.02);
    }
    auto d = std::make_unique<UNetDenoiser>(net, fixtures::bench_run_options());
    d->to(fixtures::bench_device());
    return d;
  }();
  return *model;
}

std::unique_ptr<Method> race_method(const std::string& name, const std::string& steps) {
  if (name == "copaint") {
    CoPaintParams p;  // the paper's CoPaint (configs/celebahq.yaml): G = 2, adaptive, smart lr
    p.respacing = steps;
    return std::make_unique<CoPaint>(p);
  }
  DDNMParams p;
  p.respacing = steps;
  return std::make_unique<DDNM>(p);
}

void BM_Race(benchmark::State& state, const std::string& name) {
  fixtures::apply_bench_threads();
  UNetDenoiser& model = race_model();
  const at::Device device = fixtures::bench_device();
  const int64_t size = model.unet().config().image_size;
  auto method = race_method(name, env_or("COPAINT_RACE_STEPS", "25"));
  at::manual_seed(1);
  InpaintInput in;
  in.image = (at::rand({1, 3, size, size}) * 2 - 1).to(device);
  in.mask = half_mask(size, size).unsqueeze(0).to(device);
  auto sample = [&] {
    in.generators = {at::make_generator<at::CPUGeneratorImpl>(0)};
    InpaintOutput out = method->run(model, in);
    benchmark::DoNotOptimize(out.sample.reshape(-1)[0].item<float>());  // waits for the device
    return out;
  };
  sample();  // warm-up: kernel selection, allocator
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const InpaintOutput out = sample();
    state.counters["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.counters["forwards"] = static_cast<double>(out.evals.forwards);
    state.counters["backwards"] = static_cast<double>(out.evals.backwards);
  }
  state.SetLabel(precision_name(fixtures::bench_run_options().precision));
}

const bool kRegistered = [] {
  for (const char* name : {"copaint", "ddnm"}) {
    benchmark::RegisterBenchmark((std::string("BM_Race/") + name).c_str(), BM_Race, name)
        ->Iterations(1)
        ->Unit(benchmark::kSecond)
        ->UseRealTime();
  }
  return true;
}();

}  // namespace
}  // namespace copaint
