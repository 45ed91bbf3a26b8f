// Shared by tests and benchmarks: the tiny trained ADM UNet of tests/fixtures/unet (32x32, 32
// channels, 2M parameters), a small random-weight config, and the recorded CoPaint cases of
// tests/fixtures/copaint.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "framework/nn/denoisers.h"
#include "framework/nn/onednn_ops.h"
#include "methods/copaint.h"
#include "methods/verify/fixture_io.h"
#include "methods/verify/verify.h"
#include "tests/test_paths.h"

namespace copaint::fixtures {

inline const std::string kFixtures = COPAINT_TEST_FIXTURES_DIR;

inline bool fixture_exists(const std::string& relative) {
  return std::ifstream(kFixtures + "/" + relative).good();
}

inline nlohmann::json load_json(const std::string& path) { return read_json(path); }

/// For one benchmark: the intra-op thread count and the oneDNN switch (onednn_ops.h; off = the
/// plain ATen ops, i.e. the speed before the oneDNN routing), restored afterwards.
struct BenchSettings {
  int saved_threads = at::get_num_threads();
  bool saved_onednn = onednn_ops_enabled();
  BenchSettings(int64_t threads, int64_t onednn) {
    at::set_num_threads(static_cast<int>(threads));
    set_onednn_ops_enabled(onednn != 0);
  }
  ~BenchSettings() {
    at::set_num_threads(saved_threads);
    set_onednn_ops_enabled(saved_onednn);
  }
};

/// The device benchmarks run on: CUDA when LibTorch sees a GPU, else the CPU.
inline at::Device bench_device() {
  return at::hasCUDA() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
}

/// Applies COPAINT_BENCH_THREADS (intra-op threads) when set; benchmarks call it first.
inline void apply_bench_threads() {
  if (const char* env = std::getenv("COPAINT_BENCH_THREADS")) at::set_num_threads(std::atoi(env));
}

/// COPAINT_BENCH_PRECISION (fp32 | tf32 | bf16 | fp16), default fp32.
inline Precision bench_precision() {
  const char* env = std::getenv("COPAINT_BENCH_PRECISION");
  return env ? parse_precision(env) : Precision::kFp32;
}

/// The benchmarks' UNet run options: bench_precision(), the rest at their defaults.
inline UNetRunOptions bench_run_options() {
  UNetRunOptions o;
  o.precision = bench_precision();
  return o;
}

/// A plain dict written by torch.save.
inline c10::IValue load_dict(const std::string& path) { return read_pickled_dict(path); }

/// A small config exercising every block kind quickly (attention, up/down res blocks, learned
/// sigma, class conditioning; 16x16 images), for random-weight tests.
inline UNetConfig small_unet_config() {
  UNetConfig c;
  c.image_size = 16;
  c.num_channels = 32;
  c.num_res_blocks = 1;
  c.channel_mult = "1,2";
  c.attention_resolutions = "8";
  c.num_head_channels = 16;
  c.learn_sigma = true;
  c.class_cond = true;
  c.num_classes = 5;
  c.resblock_updown = true;
  return c;
}

using copaint::unet_config_from_json;

inline UNetConfig tiny_config() {
  return unet_config_from_json(load_json(kFixtures + "/unet/adm_tiny_config.json").at("config"));
}

/// The trained tiny UNet (adm_tiny_trained.pt), loaded once.
inline UNetDenoiser& tiny_model() {
  static std::unique_ptr<UNetDenoiser> model =
      UNetDenoiser::from_checkpoint(tiny_config(), kFixtures + "/unet/adm_tiny_trained.pt");
  return *model;
}

/// One recorded reference run: its CoPaint settings (batch-coupled, as the reference) and data.
using CoPaintCase = RecordedCase;

inline CoPaintCase load_copaint_case(const std::string& name) {
  return load_recorded_case(kFixtures + "/copaint/" + name + ".json");
}

}  // namespace copaint::fixtures
