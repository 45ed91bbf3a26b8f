// Shared by tests and benchmarks: the tiny trained ADM UNet of tests/fixtures/unet (32x32, 32 channels,
// 2M parameters), a small random-weight config, and the recorded CoPaint cases of
// tests/fixtures/copaint.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "framework/denoisers.h"
#include "framework/onednn_ops.h"
#include "methods/copaint.h"

namespace copaint::fixtures {

inline const std::string kFixtures = COPAINT_TEST_FIXTURES_DIR;

inline bool fixture_exists(const std::string& relative) {
  return std::ifstream(kFixtures + "/" + relative).good();
}

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

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

/// A plain dict written by torch.save.
inline c10::IValue load_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes);
}

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

/// UNetConfig from a fixture's "config" object (keys named as guided-diffusion's script flags;
/// channel_mult and dropout may be absent).
inline UNetConfig unet_config_from_json(const nlohmann::json& j) {
  UNetConfig c;
  c.image_size = j.at("image_size");
  c.num_channels = j.at("num_channels");
  c.num_res_blocks = j.at("num_res_blocks");
  c.channel_mult = j.value("channel_mult", std::string());
  c.learn_sigma = j.at("learn_sigma");
  c.class_cond = j.at("class_cond");
  c.attention_resolutions = j.at("attention_resolutions");
  c.num_heads = j.at("num_heads");
  c.num_head_channels = j.at("num_head_channels");
  c.use_scale_shift_norm = j.at("use_scale_shift_norm");
  c.resblock_updown = j.at("resblock_updown");
  c.dropout = j.value("dropout", 0.0);
  return c;
}

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
struct CoPaintCase {
  CoPaintParams params;
  c10::IValue data;
  at::Tensor get(const std::string& key) const { return data.toGenericDict().at(key).toTensor(); }
};

inline CoPaintCase load_copaint_case(const std::string& name) {
  CoPaintCase c;
  const auto cfg = load_json(kFixtures + "/copaint/" + name + ".json")["config"];
  const auto& sp = cfg["ddim"]["schedule_params"];
  const auto& o = cfg["optimize_xt"];
  CoPaintParams& p = c.params;
  p.respacing = cfg["timestep_respacing"];
  p.steps = sp["num_inference_steps"];
  p.schedule_type = sp["schedule_type"];
  p.time_travel = sp["use_timetravel"];
  p.jump_length = sp["jump_length"];
  p.jump_n_sample = sp["jump_n_sample"];
  p.time_travel_filter = sp["time_travel_filter_type"];
  p.eta = cfg["ddim"]["ddim_sigma"];
  p.G = o["num_iteration_optimize_xt"];
  p.lr_xt = o["lr_xt"];
  p.lr_xt_decay = o["lr_xt_decay"];
  p.coef_xt_reg = o["coef_xt_reg"];
  p.coef_xt_reg_decay = o["coef_xt_reg_decay"];
  p.smart_lr = o["use_smart_lr_xt_decay"];
  p.adaptive_lr = o["use_adaptive_lr_xt"];
  p.mid_interval_num = o["mid_interval_num"];
  p.optimize_before_time_travel = o["optimize_before_time_travel"];
  p.batch_coupled = true;
  c.data = load_dict(kFixtures + "/copaint/" + name + ".pt");
  return c;
}

}  // namespace copaint::fixtures
