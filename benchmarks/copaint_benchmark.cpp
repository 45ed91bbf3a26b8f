// CoPaint on the CPU with the tiny trained fixture UNet (tests/fixtures): one call of the
// per-step function (G gradient steps plus the DDIM step) from a recorded reference input, and
// the whole recorded copaint_g2_n1 run end to end (what scripts/bench_vs_reference.sh compares
// with the reference's wall time). Arguments: intra-op threads; the oneDNN routing of
// framework/nn/onednn_ops.h off (plain ATen, bitwise the reference's arithmetic) or on.
//   copaint_benchmark --benchmark_filter='Step.*threads:1'
//   copaint_benchmark --benchmark_filter='Run_g2_n1/threads:1/onednn:1'
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "framework/diffusion/schedule.h"
#include "methods/copaint.h"
#include "tests/tiny_fixtures.h"

namespace {

using copaint::fixtures::CoPaintCase;

const CoPaintCase& g2_n1() {
  static const CoPaintCase c = copaint::fixtures::load_copaint_case("copaint_g2_n1");
  return c;
}

bool have_fixtures(benchmark::State& state) {
  if (copaint::fixtures::fixture_exists("unet/adm_tiny_trained.pt") &&
      copaint::fixtures::fixture_exists("copaint/copaint_g2_n1.pt")) {
    return true;
  }
  state.SkipWithError("tests/fixtures/{unet,copaint} fixtures missing");
  return false;
}

// One step() call: recorded call `index` of copaint_g2_n1 (G = 2, adaptive and smart lr).
void BM_CoPaintStep(benchmark::State& state) {
  if (!have_fixtures(state)) return;
  const int64_t index = state.range(0);
  const copaint::fixtures::BenchSettings settings(state.range(1), state.range(2));
  const CoPaintCase& c = g2_n1();
  copaint::CoPaint method(c.params);
  const auto schedule = copaint::DiffusionSchedule::linear(1000).respaced(c.params.respacing);
  const at::Tensor x_in = c.get("x_in")[index];
  const int64_t t = c.get("step_t")[index].item<int64_t>();
  const int64_t prev = c.get("step_prev_t")[index].item<int64_t>();
  const double lr = c.get("step_lr_xt")[index].item<double>();
  const double coef = c.get("step_coef_xt_reg")[index].item<double>();
  const copaint::CoPaintTarget target{c.get("image"), c.get("mask"), at::Tensor(), nullptr};
  copaint::EvalCounter counter;
  for (auto _ : state) {
    const auto r = method.step(copaint::fixtures::tiny_model(), schedule, target, x_in, t, prev, lr,
                               coef, counter);
    benchmark::DoNotOptimize(r.x_prev.data_ptr());
  }
  state.counters["forwards/step"] = static_cast<double>(counter.forwards) / state.iterations();
  state.counters["backwards/step"] = static_cast<double>(counter.backwards) / state.iterations();
}

// The whole recorded run from its x_T (what the reference's ref_bench.py times).
void BM_CoPaintRun_g2_n1(benchmark::State& state) {
  if (!have_fixtures(state)) return;
  const copaint::fixtures::BenchSettings settings(state.range(0), state.range(1));
  const CoPaintCase& c = g2_n1();
  copaint::CoPaint method(c.params);
  copaint::InpaintInput input;
  input.x_T = c.get("x_T");
  input.image = c.get("image").expand_as(input.x_T).contiguous();
  input.mask = c.get("mask");
  copaint::fixtures::tiny_model();  // loading is not timed
  double err = 0;
  int64_t forwards = 0, backwards = 0;
  for (auto _ : state) {
    const copaint::InpaintOutput out = method.run(copaint::fixtures::tiny_model(), input);
    err = (out.sample - c.get("sample")).abs().max().item<double>();
    forwards = out.evals.forwards;
    backwards = out.evals.backwards;
  }
  state.counters["max_err_vs_fixture"] = err;
  state.counters["forwards"] = static_cast<double>(forwards);
  state.counters["backwards"] = static_cast<double>(backwards);
}

}  // namespace

BENCHMARK(BM_CoPaintStep)
    ->ArgNames({"call", "threads", "onednn"})
    ->ArgsProduct({{24}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_CoPaintRun_g2_n1)
    ->ArgNames({"threads", "onednn"})
    ->ArgsProduct({{1, 2}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
