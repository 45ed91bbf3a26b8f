// Tests of framework/nn/diffusers_unet.h and diffusers_config.h: parity with the diffusers
// package (UNet2DModel outputs, DDIMScheduler trajectories) on tests/fixtures/diffusers/, config
// and weight diagnostics, the scheduler mapping and the registry entries.
#include "framework/nn/diffusers_unet.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusers_ddim.h"
#include "framework/diffusion/diffusion.h"
#include "framework/nn/models.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return std::string(COPAINT_TEST_FIXTURES_DIR) + "/diffusers/" + name;
}

std::map<std::string, at::Tensor> tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : read_safetensors(path)) out[name] = t;
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

/// A scratch copy of a fixture folder whose files a test may edit.
struct ScratchFolder {
  explicit ScratchFolder(const std::string& from) {
    dir = (fs::temp_directory_path() / ("diffusers_test_" + std::to_string(::getpid()) + "_" +
                                        fs::path(from).filename().string()))
              .string();
    fs::remove_all(dir);
    fs::copy(from, dir, fs::copy_options::recursive);
  }
  ~ScratchFolder() { fs::remove_all(dir); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir + "/" + name) << text;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(dir + "/" + name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string dir;
};

class DiffusersUNetParity : public ::testing::TestWithParam<std::string> {};

TEST_P(DiffusersUNetParity, MatchesDiffusersOutputs) {
  const std::string name = GetParam();
  auto model = DiffusersDenoiser::from_folder(fixture(name));
  auto io = tensors(fixture(name + "/io.safetensors"));
  at::NoGradGuard no_grad;
  const at::Tensor out = model->forward(io["x"], io["t"].to(at::kLong), at::Tensor());
  ASSERT_EQ(out.sizes(), io["out"].sizes());
  const double scale = io["out"].abs().max().item<double>();
  const double diff = max_abs_diff(out, io["out"]);
  std::printf("[%s] max |ours - diffusers| %.3g (max |out| %.3g)\n", name.c_str(), diff, scale);
  EXPECT_LT(diff, 1e-5 * std::max(1.0, scale)) << name << ": max |diff| " << diff;
  // The float timesteps of the fixture are whole numbers: the same output from int64 steps.
  EXPECT_TRUE(at::equal(model->unet().forward(io["x"], io["t"]), out));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DiffusersUNetParity,
                         ::testing::Values("attn_all", "ddpm_like", "plain_1ch"));

TEST(DiffusersUNet, LayoutMatchesTheSavedStateDict) {
  const auto config = read_diffusers_unet_config(fixture("attn_all/config.json"));
  const DiffusersUNet unet(config);
  const StateDict sd = read_safetensors(fixture("attn_all/diffusion_pytorch_model.safetensors"));
  ASSERT_EQ(unet.layout().size(), sd.size());
  int64_t count = 0;
  for (const auto& [name, t] : sd) count += t.numel();
  EXPECT_EQ(unet.parameter_count(), count);
  EXPECT_EQ(count, 285667);  // what the generator printed for diffusers' model
}

TEST(DiffusersUNet, PublishedDdpm256Layout) {
  // diffusers 0.27's UNet2DModel of the published config.json counts 113,673,219 parameters
  // (DDPM's 114M CelebA-HQ / LSUN network).
  const DiffusersPreset& preset = diffusers_presets().front();
  const DiffusersUNet unet(parse_diffusers_unet_config(preset.unet_json, preset.name));
  EXPECT_EQ(unet.parameter_count(), 113673219);
}

TEST(DiffusersUNet, WeightDiagnosticsNameTheTensors) {
  const auto config = read_diffusers_unet_config(fixture("attn_all/config.json"));
  StateDict sd = read_safetensors(fixture("attn_all/diffusion_pytorch_model.safetensors"));
  const auto named = [&](const std::string& name) {
    return std::find_if(sd.begin(), sd.end(), [&](const auto& e) { return e.first == name; });
  };
  sd.erase(named("conv_in.weight"));
  sd.push_back({"extra.weight", at::zeros({2})});
  named("conv_out.bias")->second = at::zeros({7});
  DiffusersUNet unet(config);
  try {
    unet.load(sd);
    FAIL() << "load accepted a broken state dict";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("missing conv_in.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("unexpected extra.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("mis-shaped conv_out.bias [7] (expected [3])"), std::string::npos) << what;
  }
}

TEST(DiffusersConfig, UnknownKeysAndUnsupportedBlocksAreNamed) {
  const auto text = [](const std::string& extra) {
    return R"({"_class_name": "UNet2DModel", "block_out_channels": [32, 32],
               "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
               "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 8)" +
           extra + "}";
  };
  try {
    parse_diffusers_unet_config(text(""), "cfg.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cfg.json: unsupported block types CrossAttnDownBlock2D (supported: DownBlock2D, "
              "AttnDownBlock2D, UpBlock2D, AttnUpBlock2D)");
  }
  const std::string ok = R"({"block_out_channels": [32, 32],
      "down_block_types": ["DownBlock2D", "DownBlock2D"],
      "up_block_types": ["UpBlock2D", "UpBlock2D"], "norm_num_groups": 8)";
  try {
    parse_diffusers_unet_config(ok + R"(, "cross_attention_dim": 768, "foo": 1})", "cfg.json");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.json: unknown UNet2DModel keys cross_attention_dim, foo");
  }
  EXPECT_THROW(parse_diffusers_unet_config(ok + R"(, "time_embedding_type": "fourier"})", "c"),
               InputError);
  EXPECT_THROW(parse_diffusers_unet_config(ok + R"(, "num_class_embeds": 10})", "c"), InputError);
  EXPECT_THROW(parse_diffusers_unet_config(ok + R"(, "layers_per_block": "2"})", "c"), InputError);
  std::vector<std::string> missing;
  const auto c = parse_diffusers_unet_config(ok + "}", "c", &missing);
  EXPECT_EQ(c.attention_head_dim, 8);  // diffusers' default
  EXPECT_NE(std::find(missing.begin(), missing.end(), "freq_shift"), missing.end());
}

TEST(DiffusersConfig, SchedulerMapping) {
  std::vector<std::string> ignored;
  const auto s = parse_diffusers_scheduler_config(
      R"({"_class_name": "DDPMScheduler", "beta_schedule": "linear", "num_train_timesteps": 1000,
          "variance_type": "fixed_large", "clip_sample": true, "skip_prk_steps": true})",
      "s.json", &ignored);
  EXPECT_EQ(ignored, std::vector<std::string>{"skip_prk_steps"});
  EXPECT_EQ(s.variance(), ModelVariance::kFixedLarge);
  // diffusers' linear betas equal guided-diffusion's 1000-step ones up to float32 rounding.
  const DiffusionSchedule ours = s.schedule(), adm = DiffusionSchedule::linear(1000);
  for (int64_t t = 0; t < 1000; t += 111) EXPECT_NEAR(ours.alpha_bar(t), adm.alpha_bar(t), 1e-7);
  EXPECT_THROW(parse_diffusers_scheduler_config(R"({"thresholding": true})", "s"), InputError);
  EXPECT_THROW(parse_diffusers_scheduler_config(R"({"prediction_type": "flow"})", "s"), InputError);
  EXPECT_THROW(parse_diffusers_scheduler_config(R"({"beta_schedule": "sigmoid"})", "s"),
               InputError);
  EXPECT_THROW(parse_diffusers_scheduler_config(R"({"variance_type": "learned"})", "s"),
               InputError);
}

class DiffusersDdimParity : public ::testing::TestWithParam<std::string> {};

TEST_P(DiffusersDdimParity, TrajectoryMatchesDiffusers) {
  const std::string dir = fixture("ddim_" + GetParam());
  const auto sched = read_diffusers_scheduler_config(dir + "/scheduler_config.json");
  auto ref = tensors(dir + "/trajectory.safetensors");
  const DiffusionSchedule train = sched.schedule();
  // The process: diffusers' float32 alphas_cumprod.
  const at::Tensor ab = at::tensor(train.alphas_cumprod, at::kDouble);
  EXPECT_LT(max_abs_diff(ab, ref["alphas_cumprod"]), 2e-6);
  // The timesteps of the spacing.
  const int64_t n = ref["timesteps"].size(0);
  const std::vector<int64_t> steps =
      diffusers_timesteps(sched.timestep_spacing, sched.num_train_timesteps, n, sched.steps_offset);
  EXPECT_TRUE(at::equal(at::tensor(steps, at::kLong), ref["timesteps"]));
  // The trajectory, on the fixture model run with this scheduler's process.
  auto unet = load_diffusers_unet(read_diffusers_unet_config(fixture("attn_all/config.json")),
                                  fixture("attn_all/diffusion_pytorch_model.safetensors"));
  DiffusersDenoiser model(unet, sched);
  DiffusersDdimSettings s;
  s.timestep_spacing = sched.timestep_spacing;
  s.steps_offset = sched.steps_offset;
  s.set_alpha_to_one = sched.set_alpha_to_one;
  s.clip_sample = sched.clip_sample;
  s.clip_sample_range = sched.clip_sample_range;
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor> xs = diffusers_ddim_sample(model, train, s, n, ref["x_T"]);
  ASSERT_EQ(static_cast<int64_t>(xs.size()), n);
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, max_abs_diff(xs[i], ref["xs"][i]));
  std::printf("[ddim %s] max |ours - diffusers| over %lld steps %.3g\n", GetParam().c_str(),
              static_cast<long long>(n), worst);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LT(max_abs_diff(xs[i], ref["xs"][i]), 1e-4) << GetParam() << " step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DiffusersDdimParity,
                         ::testing::Values("leading", "trailing", "linspace"));

TEST(DiffusersDdim, RespacedScheduleWalksDiffusersLeadingTrajectory) {
  // The methods' schedule option: respacing "leading10" keeps diffusers' timesteps, and the
  // framework's DDIM step over it (prev -1 = alpha_bar 1; x0 clamped: clip_sample) reproduces
  // DDIMScheduler's run.
  const std::string dir = fixture("ddim_leading");
  const auto sched = read_diffusers_scheduler_config(dir + "/scheduler_config.json");
  auto ref = tensors(dir + "/trajectory.safetensors");
  DiffusersDenoiser model(
      load_diffusers_unet(read_diffusers_unet_config(fixture("attn_all/config.json")),
                          fixture("attn_all/diffusion_pytorch_model.safetensors")),
      sched);
  const DiffusionSchedule schedule = method_schedule(model, "leading10");
  ASSERT_EQ(schedule.size(), 10);
  EXPECT_EQ(schedule.timestep_map.back(), 900);
  at::NoGradGuard no_grad;
  at::Tensor x = ref["x_T"];
  EvalCounter counter;
  for (int64_t i = schedule.size() - 1; i >= 0; --i) {
    const at::Tensor t = batch_steps(i, x), prev = batch_steps(i - 1, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, at::Tensor(), counter);
    x = ddim_step(schedule, x0_from_eps(schedule, x, t, eps).clamp(-1, 1), eps, t, prev);
    EXPECT_LT(max_abs_diff(x, ref["xs"][schedule.size() - 1 - i]), 1e-4) << "respaced step " << i;
  }
}

TEST(DiffusersDenoiser, VarianceAndProcessComeFromTheSchedulerConfig) {
  ScratchFolder folder(fixture("attn_all"));
  folder.write("scheduler_config.json",
               R"({"_class_name": "DDPMScheduler", "beta_schedule": "squaredcos_cap_v2",
                   "variance_type": "fixed_large", "num_train_timesteps": 500})");
  auto model = DiffusersDenoiser::from_folder(folder.dir);
  EXPECT_EQ(model->num_train_timesteps(), 500);
  EXPECT_EQ(model->variance(), ModelVariance::kFixedLarge);
  const DiffusionSchedule s = method_schedule(*model, "50");
  EXPECT_EQ(s.size(), 50);
  EXPECT_NEAR(s.alpha_bar(s.size() - 1), model->train_schedule().alpha_bar(499), 1e-12);
  // RePaint's variance `auto` asks the model: fixed_large here, i.e. log beta for t > 0.
  EvalCounter counter;
  const at::Tensor x = at::randn({1, 3, 16, 16});
  const at::Tensor t = batch_steps(10, x);
  at::NoGradGuard no_grad;
  const ModelOutput out = predict_model(*model, s, x, t, at::Tensor(), counter);
  const auto k = DdpmCoefficients::from_schedule(s);
  const auto pmv = p_mean_variance(s, k, x, t, out, VarianceType::kAuto, true);
  EXPECT_NEAR(pmv.log_variance.flatten()[0].item<double>(), std::log(s.beta(10)), 1e-6);
}

TEST(DiffusersDenoiser, PredictionTypesConvertToEps) {
  ScratchFolder folder(fixture("attn_all"));
  auto eps_model = DiffusersDenoiser::from_folder(folder.dir);  // no scheduler config: DDPM's
  const at::Tensor x = at::randn({2, 3, 16, 16});
  const at::Tensor t = at::tensor({5, 700}, at::kLong);
  at::NoGradGuard no_grad;
  const at::Tensor raw = eps_model->forward(x, t, at::Tensor());
  const at::Tensor ab = at::tensor(eps_model->train_schedule().alphas_cumprod, at::kDouble)
                            .index({t})
                            .to(at::kFloat)
                            .view({-1, 1, 1, 1});
  folder.write("scheduler_config.json", R"({"prediction_type": "v_prediction"})");
  auto v_model = DiffusersDenoiser::from_folder(folder.dir);
  EXPECT_LT(
      max_abs_diff(v_model->forward(x, t, at::Tensor()), ab.sqrt() * raw + (1 - ab).sqrt() * x),
      1e-5);
  folder.write("scheduler_config.json", R"({"prediction_type": "sample"})");
  auto x0_model = DiffusersDenoiser::from_folder(folder.dir);
  EXPECT_LT(
      max_abs_diff(x0_model->forward(x, t, at::Tensor()), (x - ab.sqrt() * raw) / (1 - ab).sqrt()),
      1e-3);
}

TEST(DiffusersDenoiser, FolderErrorsAreOneLine) {
  EXPECT_THROW(DiffusersDenoiser::from_folder(fixture("no_such_folder")), InputError);
  ScratchFolder folder(fixture("attn_all"));
  fs::remove(folder.dir + "/diffusion_pytorch_model.safetensors");
  try {
    DiffusersDenoiser::from_folder(folder.dir);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no diffusion_pytorch_model.safetensors or .bin"),
              std::string::npos);
  }
}

TEST(DiffusersModels, RegistryEntriesLoadFoldersAndCheckPresets) {
  register_builtin_models();
  Options settings;
  settings.set("diffusers.checkpoint", fixture("ddpm_like"));
  auto model = create_model("diffusers", settings);
  EXPECT_EQ(model->channels(), 3);
  EXPECT_NE(model->describe().find("UNet2DModel"), std::string::npos);
  EXPECT_THROW(create_model("diffusers", Options()), UsageError);
  // A preset refuses a folder of another architecture.
  Options preset;
  preset.set("ddpm_celebahq256.checkpoint", fixture("ddpm_like"));
  try {
    create_model("ddpm_celebahq256", preset);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not the architecture of ddpm_celebahq256"),
              std::string::npos)
        << e.what();
  }
  for (const char* name :
       {"ddpm_celebahq256", "ddpm_church256", "ddpm_bedroom256", "ddpm_cat256"}) {
    EXPECT_TRUE(Registry<Denoiser>::global().contains(name)) << name;
  }
}

}  // namespace
}  // namespace copaint
