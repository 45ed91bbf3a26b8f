// Tests of `copaint inpaint`, `copaint inspect` and the model registry, through run_cli.
#include "experiments/app/inpaint_command.h"
#include "experiments/experiment/inpaint_batch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include "experiments/app/cli.h"
#include "experiments/imageio/image_io.h"
#include "framework/checkpoint/checkpoint.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/nn/models.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = COPAINT_TEST_FIXTURES_DIR;
const std::string kTrained = kFixtures + "/unet/adm_tiny_trained.pt";

struct Result {
  int code;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_inpaint_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

nlohmann::json tiny_config(const std::string& name = "adm_tiny") {
  std::ifstream f(kFixtures + "/unet/" + name + "_config.json");
  return nlohmann::json::parse(f)["config"];
}

std::string json_value(const nlohmann::json& v) {
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  std::ostringstream s;
  s << v.get<double>();
  return s.str();
}

/// `--set adm.<flag>=<value>` for every flag of a tiny fixture's config.
std::vector<std::string> tiny_adm_args(const std::string& name = "adm_tiny") {
  std::vector<std::string> args;
  const nlohmann::json config = tiny_config(name);
  for (const auto& [k, v] : config.items()) {
    args.push_back("--set");
    args.push_back("adm." + k + "=" + json_value(v));
  }
  return args;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

size_t lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

TEST(Models, ListShowsEveryModelWithItsOptions) {
  auto r = run({"list", "models"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* m : {"celebahq256", "imagenet256", "adm", "gaussian"}) {
    EXPECT_NE(r.out.find(std::string("  ") + m + " - "), std::string::npos) << m;
  }
  for (const char* k : {"adm.num_channels = 128", "adm.attention_resolutions = 16,8",
                        "adm.use_new_attention_order = false",
                        "adm.checkpoint = ", "celebahq256.checkpoint = ", "gaussian.std = "}) {
    EXPECT_NE(r.out.find(k), std::string::npos) << k;
  }
}

TEST(Models, AdmFlagsRoundTripThroughOptions) {
  register_all();
  UNetConfig c = unet_preset("imagenet256");
  Options o;
  for (const auto& [k, v] : adm_flags(c)) o.set(k, v);
  EXPECT_EQ(adm_config_from_options(o).to_string(), c.to_string());
  // Every flag is an option of the `adm` entry, plus checkpoint and the four run settings.
  const auto& entry = Registry<Denoiser>::global().at("adm");
  EXPECT_EQ(entry.options.size(), adm_flags(c).size() + 5);
  for (const char* run_setting :
       {"precision", "channels_last", "grad_checkpoint", "cudnn_benchmark"}) {
    for (const char* model : {"adm", "celebahq256", "imagenet256"}) {
      const auto& options = Registry<Denoiser>::global().at(model).options;
      EXPECT_TRUE(std::any_of(options.begin(), options.end(),
                              [&](const OptionSpec& o) { return o.key == run_setting; }))
          << model << "." << run_setting;
    }
  }
}

// precision=auto follows use_fp16 (falling back to fp32 on the CPU, and saying so); an explicit
// precision wins over use_fp16.
TEST(Models, PrecisionAutoFollowsUseFp16AndExplicitWins) {
  register_all();
  Options settings;
  const nlohmann::json config = tiny_config();
  for (const auto& [k, v] : config.items()) settings.set("adm." + k, json_value(v));
  settings.set("adm.checkpoint", kTrained);
  settings.set("adm.use_fp16", "true");
  auto automatic = create_model("adm", settings);
  EXPECT_NE(automatic->describe().find("precision=fp16"), std::string::npos);
  automatic->to(at::kCPU);  // no fp16 convolutions on the CPU: fp32, with a warning
  EXPECT_NE(automatic->describe().find("precision=fp32"), std::string::npos);
  settings.set("adm.precision", "bf16");
  auto explicit_bf16 = create_model("adm", settings);
  EXPECT_NE(explicit_bf16->describe().find("precision=bf16"), std::string::npos);
  settings.set("adm.precision", "fp32");
  EXPECT_NE(create_model("adm", settings)->describe().find("precision=fp32"), std::string::npos);
  settings.set("adm.precision", "fp64");
  EXPECT_THROW(create_model("adm", settings), UsageError);
}

TEST(Models, CreatesTheTinyUNetAndTheGaussianModel) {
  register_all();
  Options settings;
  const nlohmann::json config = tiny_config();
  for (const auto& [k, v] : config.items()) settings.set("adm." + k, json_value(v));
  settings.set("adm.checkpoint", kTrained);
  auto m = create_model("adm", settings);
  EXPECT_EQ(m->image_size(), 32);
  EXPECT_EQ(m->channels(), 3);
  EXPECT_TRUE(m->learn_sigma());
  auto g =
      create_model("gaussian", Options{{"gaussian.image_size", "8"}, {"gaussian.channels", "1"}});
  EXPECT_EQ(g->image_size(), 8);
  EXPECT_EQ(g->channels(), 1);
  EXPECT_THROW(create_model("gaussian", Options{{"gaussian.std", "0"}}), UsageError);
  // Checkpoint required / missing.
  EXPECT_THROW(create_model("celebahq256", Options{}), UsageError);
  try {
    create_model("celebahq256", Options{{"celebahq256.checkpoint", "/no/such/file.pt"}});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/no/such/file.pt"), std::string::npos) << e.what();
  }
  // A checkpoint that does not fit the flags names the file.
  settings.set("adm.num_channels", "64");
  try {
    create_model("adm", settings);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(kTrained), std::string::npos) << e.what();
  }
}

TEST(Inspect, PrintsTheFixtureFlags) {
  const std::string path = kFixtures + "/unet/adm_tiny.pt";
  auto r = run({"inspect", path, "--image-size", "32"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("format: zip"), std::string::npos) << r.out;
  std::ifstream f(kFixtures + "/unet/adm_tiny_config.json");
  const auto j = nlohmann::json::parse(f);
  EXPECT_NE(r.out.find("tensors: 306"), std::string::npos) << r.out;
  // The parameter count of the fixture, with thousands separators.
  std::string params = std::to_string(j["params"].get<int64_t>());
  for (int i = static_cast<int>(params.size()) - 3; i > 0; i -= 3)
    params.insert(static_cast<size_t>(i), ",");
  EXPECT_NE(r.out.find("parameters: " + params), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("float32 (306 tensors"), std::string::npos) << r.out;
  const auto inferred = r.out.substr(0, r.out.find("not inferable"));
  for (const auto& [k, v] : j["config"].items()) {
    const std::string line = "--set adm." + k + "=" + json_value(v) + "\n";
    if (k == "num_heads" || k == "num_head_channels" || k == "dropout") {
      // Not determinable from shapes: listed separately, not as inferred.
      EXPECT_NE(r.out.find("--set adm." + k + "="), std::string::npos) << k;
      EXPECT_EQ(inferred.find("--set adm." + k + "="), std::string::npos) << k;
    } else {
      EXPECT_NE(inferred.find(line), std::string::npos) << line << r.out;
    }
  }
  // Without the size, channel_mult 1,2,2 is no default: the rest is still printed.
  auto n = run({"inspect", path});
  ASSERT_EQ(n.code, 0) << n.err;
  EXPECT_NE(n.out.find("--set adm.channel_mult=1,2,2\n"), std::string::npos) << n.out;
  EXPECT_NE(n.out.find("not inferable without --image-size"), std::string::npos) << n.out;
  EXPECT_EQ(n.out.find("--set adm.image_size="), std::string::npos) << n.out;
  // A missing file: exit 1, one line naming it.
  auto m = run({"inspect", "/no/such/ckpt.pt"});
  EXPECT_EQ(m.code, 1);
  EXPECT_NE(m.err.find("/no/such/ckpt.pt"), std::string::npos) << m.err;
  EXPECT_EQ(lines(m.err), 1u) << m.err;
}

TEST(Inspect, DescribesADiffusersFolder) {
  const std::string dir = kFixtures + "/diffusers/ddpm_like";
  auto r = run({"inspect", dir});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line :
       {"diffusers folder: ", "format: zip", "tensors: 268", "parameters: 279,235",
        "class: UNet2DModel, 3 -> 3 channels, sample_size 16",
        "level 1: AttnDownBlock2D / AttnUpBlock2D, 16 channels",
        "mid: UNetMidBlock2D with attention", "flip_sin_to_cos false, freq_shift 1",
        "scheduler: none", "weights: match the config", "use: --model diffusers --checkpoint "}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
}

// A diffusers folder through the whole command: loaded by --model diffusers --checkpoint DIR.
TEST(Inpaint, DiffusersFolderEndToEnd) {
  const auto dir = temp_dir("diffusers");
  const std::string img = (dir / "img.png").string();
  at::manual_seed(0);
  write_image(img, at::rand({3, 16, 16}) * 1.6 - 0.8);
  auto r = run({"--device", "cpu", "inpaint", "--model", "diffusers", "--checkpoint",
                kFixtures + "/diffusers/attn_all", "--image", img, "--mask", "half", "--method",
                "repaint", "--set", "repaint.respacing=5", "--set", "repaint.jump_length=1",
                "--out", (dir / "o").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "o" / "sample_0.png"));
  auto m = run({"inpaint", "--model", "diffusers", "--checkpoint", "/no/such/folder", "--image",
                img, "--mask", "half", "--out", (dir / "p").string()});
  EXPECT_EQ(m.code, 1);
  EXPECT_NE(m.err.find("/no/such/folder"), std::string::npos) << m.err;
  EXPECT_EQ(lines(m.err), 1u) << m.err;
  fs::remove_all(dir);
}

TEST(Inpaint, HelpDocumentsEveryOption) {
  auto r = run({"inpaint", "--help"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* o :
       {"--method", "--model", "--checkpoint", "--image", "--mask", "--mask-invert",
        "--mask-resize", "--mask-seed", "--class-label", "--init-noise", "--samples",
        "--batch-size", "--seed", "--out", "--save-tensors", "--config", "--set"}) {
    EXPECT_NE(r.out.find(std::string(o) + " "), std::string::npos) << o;
  }
  auto all = run({"--help"});
  EXPECT_NE(all.out.find("inpaint"), std::string::npos);
  EXPECT_NE(all.out.find("inspect"), std::string::npos);
}

TEST(Inpaint, UsageAndInputErrorsAreOneLineNamingValidChoices) {
  const auto dir = temp_dir("errors");
  const std::string img = (dir / "img.png").string();
  write_image(img, at::zeros({3, 8, 8}));
  const std::vector<std::string> base = {"inpaint", "--image", img, "--out", (dir / "o").string()};
  auto check = [&](const std::vector<std::string>& extra, int code,
                   const std::vector<std::string>& needles) {
    auto r = run(concat(base, extra));
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(lines(r.err), 1u) << r.err;
    for (const auto& s : needles) EXPECT_NE(r.err.find(s), std::string::npos) << s << ": " << r.err;
  };
  check({"--method", "bogus", "--model", "gaussian", "--mask", "half"}, 2,
        {"unknown method 'bogus'; valid: ", "copaint"});
  check({"--model", "bogus", "--mask", "half"}, 2,
        {"unknown model 'bogus'; valid: ", "celebahq256", "gaussian"});
  check({"--mask", "half"}, 2, {"--model is required", "celebahq256"});
  check({"--model", "gaussian", "--mask", "half", "--set", "copaint.bogus=1"}, 2,
        {"unknown option 'copaint.bogus'", "valid: ", "lr_xt"});
  check({"--model", "gaussian", "--mask", "half", "--set", "gaussian.bogus=1"}, 2,
        {"unknown option 'gaussian.bogus'", "image_size"});
  check({"--model", "gaussian", "--mask", "half", "--set", "ddim.steps=3"}, 2,
        {"'ddim.steps'", "valid prefixes: copaint, gaussian ("});
  check({"--model", "gaussian", "--mask", "random", "--set", "box.hole_fraction=0.3"}, 2,
        {"valid prefixes: copaint, gaussian, random ("});
  check({"--model", "celebahq256", "--mask", "half"}, 2, {"needs a checkpoint", "--checkpoint"});
  check({"--model", "celebahq256", "--mask", "half", "--checkpoint", "/no/such/model.pt"}, 1,
        {"/no/such/model.pt", "no such file"});
  check({"--model", "gaussian", "--mask", "nonexistent_mask"}, 1,
        {"nonexistent_mask", "no such file", "registered mask", "half"});
  check({"--model", "gaussian", "--mask", "half", "--frobnicate"}, 2, {"frobnicate"});
  // A mask image whose size differs from the image's.
  const std::string small = (dir / "small.png").string();
  write_mask(small, at::ones({1, 4, 6}));
  check({"--model", "gaussian", "--set", "gaussian.image_size=8", "--mask", small}, 1,
        {small, "4x6", "8x8", "--mask-resize"});
  fs::remove_all(dir);
}

// The analytic Gaussian model makes the command's own machinery cheap to test: batching, seeds,
// saved tensors and --init-noise.
TEST(Inpaint, SeedsBatchesSavedTensorsAndInitNoise) {
  const auto dir = temp_dir("gaussian");
  const std::string img = (dir / "img.png").string();
  at::manual_seed(0);
  write_image(img, at::rand({3, 16, 16}) * 1.6 - 0.8);
  const std::vector<std::string> common = {"--device",
                                           "cpu",
                                           "inpaint",
                                           "--model",
                                           "gaussian",
                                           "--set",
                                           "gaussian.image_size=16",
                                           "--image",
                                           img,
                                           "--mask",
                                           "half",
                                           "--set",
                                           "copaint.respacing=20",
                                           "--set",
                                           "copaint.steps=5",
                                           "--save-tensors"};
  auto a = run(concat(common, {"--seed", "7", "--samples", "3", "--out", (dir / "a").string()}));
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("UNet evaluations: "), std::string::npos) << a.out;
  auto b = run(concat(common, {"--seed", "7", "--samples", "3", "--batch-size", "2", "--out",
                               (dir / "b").string()}));
  ASSERT_EQ(b.code, 0) << b.err;
  for (const char* f : {"sample_0.png", "sample_1.png", "sample_2.png", "input.png", "mask.png",
                        "masked.png", "settings.ini", "samples.pt"}) {
    EXPECT_TRUE(fs::exists(dir / "a" / f)) << f;
  }
  const auto da = read_torch_file((dir / "a" / "samples.pt").string()).toGenericDict();
  const auto db = read_torch_file((dir / "b" / "samples.pt").string()).toGenericDict();
  const at::Tensor sa = da.at("samples").toTensor(), sb = db.at("samples").toTensor();
  ASSERT_EQ(sa.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
  EXPECT_EQ(da.at("x_T").toTensor().sizes(), sa.sizes());
  EXPECT_EQ(da.at("mask").toTensor().sizes(), (std::vector<int64_t>{1, 16, 16}));
  // Batching does not change a sample; different samples differ.
  EXPECT_LE((sa - sb).abs().max().item<double>(), 1e-5);
  EXPECT_GT((sa[0] - sa[1]).abs().max().item<double>(), 1e-2);
  // Sample i's noise comes from seed*1000003+i, whatever the number of samples.
  auto one = run(concat(common, {"--seed", "7", "--out", (dir / "one").string()}));
  ASSERT_EQ(one.code, 0) << one.err;
  const auto d1 = read_torch_file((dir / "one" / "samples.pt").string()).toGenericDict();
  EXPECT_TRUE(d1.at("x_T").toTensor()[0].equal(da.at("x_T").toTensor()[0]));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(inpaint_sample_seed(7, 2));
  EXPECT_TRUE(at::randn({1, 3, 16, 16}, gen)[0].equal(da.at("x_T").toTensor()[2]));
  // The PNGs hold the tensors (to 8 bits).
  EXPECT_LE(
      (read_image((dir / "a" / "sample_1.png").string(), 3) - sa[1]).abs().max().item<double>(),
      0.5 / 127.5 + 1e-6);
  // --init-noise replays the saved x_T (and sets the sample count).
  auto c = run(concat(common, {"--init-noise", (dir / "a" / "samples.pt").string(), "--seed", "99",
                               "--out", (dir / "c").string()}));
  ASSERT_EQ(c.code, 0) << c.err;
  const auto dc = read_torch_file((dir / "c" / "samples.pt").string()).toGenericDict();
  EXPECT_LE((dc.at("samples").toTensor() - sa).abs().max().item<double>(), 1e-5);
  auto bad = run(concat(common, {"--init-noise", (dir / "a" / "samples.pt").string(), "--samples",
                                 "2", "--seed", "7", "--out", (dir / "d").string()}));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("holds 3 samples"), std::string::npos) << bad.err;
  // The settings file reproduces the run's settings through --config.
  auto e = run({"--device", "cpu", "inpaint", "--model", "gaussian", "--image", img, "--mask",
                "half", "--config", (dir / "a" / "settings.ini").string(), "--seed", "7",
                "--samples", "3", "--save-tensors", "--out", (dir / "e").string()});
  ASSERT_EQ(e.code, 0) << e.err;
  const auto de = read_torch_file((dir / "e" / "samples.pt").string()).toGenericDict();
  EXPECT_TRUE(de.at("samples").toTensor().equal(sa));
  fs::remove_all(dir);
}

// A class-conditional UNet gets its label from --class-label (required, and it matters).
TEST(Inpaint, ClassConditionalModelTakesTheLabel) {
  const auto dir = temp_dir("cond");
  const std::string img = (dir / "img.png").string();
  write_image(img, at::zeros({3, 32, 32}));
  const auto base = concat({"--device", "cpu", "inpaint", "--model", "adm", "--checkpoint",
                            kFixtures + "/unet/adm_tiny_cond.pt", "--image", img, "--mask", "half",
                            "--set", "copaint.respacing=20", "--set", "copaint.steps=2", "--set",
                            "copaint.G=1", "--save-tensors"},
                           tiny_adm_args("adm_tiny_cond"));
  auto none = run(concat(base, {"--out", (dir / "none").string()}));
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("--class-label in [0, 1000)"), std::string::npos) << none.err;
  auto a = run(concat(base, {"--class-label", "3", "--out", (dir / "a").string()}));
  ASSERT_EQ(a.code, 0) << a.err;
  auto b = run(concat(base, {"--class-label", "7", "--out", (dir / "b").string()}));
  ASSERT_EQ(b.code, 0) << b.err;
  const auto sa =
      read_torch_file((dir / "a" / "samples.pt").string()).toGenericDict().at("samples").toTensor();
  const auto sb =
      read_torch_file((dir / "b" / "samples.pt").string()).toGenericDict().at("samples").toTensor();
  EXPECT_GT((sa - sb).abs().max().item<double>(), 1e-4);
  // An unconditional model refuses a label.
  auto u = run({"inpaint", "--model", "gaussian", "--image", img, "--mask", "half", "--class-label",
                "1", "--out", (dir / "u").string()});
  EXPECT_EQ(u.code, 2);
  EXPECT_NE(u.err.find("not class-conditional"), std::string::npos) << u.err;
  fs::remove_all(dir);
}

// End to end on the trained tiny UNet: the CoPaint fixture's problem given as PNG files and its
// recorded x_T through --init-noise (the fixture .pt itself, a dict with key x_T); the paper's
// default settings with 25 DDIM steps over the 50-step respacing must reproduce the reference's
// final sample.
// --precision is <model>.precision: bf16 changes the samples a little, fp16 needs CUDA, and the
// flag is refused where it means nothing.
TEST(Inpaint, PrecisionFlag) {
  const auto dir = temp_dir("precision");
  const std::string img = (dir / "img.png").string();
  at::manual_seed(0);
  write_image(img, at::rand({3, 32, 32}) * 1.6 - 0.8);
  const auto args = [&](const std::string& precision, const std::string& out) {
    std::vector<std::string> a = {"--device", "cpu"};
    if (!precision.empty()) a.insert(a.end(), {"--precision", precision});
    a.insert(a.end(), {"inpaint", "--method", "blended", "--model", "adm", "--checkpoint", kTrained,
                       "--image", img, "--mask", "half", "--set", "blended.respacing=10",
                       "--save-tensors", "--out", (dir / out).string()});
    return concat(a, tiny_adm_args());
  };
  auto fp32 = run(args("", "fp32"));
  ASSERT_EQ(fp32.code, 0) << fp32.err;
  auto bf16 = run(args("bf16", "bf16"));
  ASSERT_EQ(bf16.code, 0) << bf16.err;
  const at::Tensor a = read_torch_file((dir / "fp32" / "samples.pt").string())
                           .toGenericDict()
                           .at("samples")
                           .toTensor();
  const at::Tensor b = read_torch_file((dir / "bf16" / "samples.pt").string())
                           .toGenericDict()
                           .at("samples")
                           .toTensor();
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_GT(diff, 0.0);
  EXPECT_LT((a - b).abs().mean().item<double>(), 0.1);
  std::ifstream settings(dir / "bf16" / "settings.ini");
  const std::string text((std::istreambuf_iterator<char>(settings)),
                         std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("precision"), std::string::npos) << text;
  if (!cuda_available()) {
    auto fp16 = run(args("fp16", "fp16"));
    EXPECT_EQ(fp16.code, 2);
    EXPECT_NE(fp16.err.find("fp16 needs a CUDA device"), std::string::npos) << fp16.err;
  }
  auto bad = run(args("fp8", "bad"));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("fp32, tf32, bf16, fp16"), std::string::npos) << bad.err;
  auto list = run({"--precision", "bf16", "list"});
  EXPECT_EQ(list.code, 2);
  EXPECT_NE(list.err.find("inpaint and run"), std::string::npos) << list.err;
  fs::remove_all(dir);
}

TEST(Inpaint, TinyUNetEndToEndMatchesTheReference) {
  const auto dir = temp_dir("unet");
  const std::string fixture = kFixtures + "/copaint/copaint_ddim25_of50.pt";
  const auto d = read_torch_file(fixture).toGenericDict();
  const at::Tensor image = d.at("image").toTensor()[0].to(at::kFloat);
  const at::Tensor mask = d.at("mask").toTensor()[0].to(at::kFloat);
  const at::Tensor reference = d.at("sample").toTensor().to(at::kFloat);
  // Fashion-MNIST pixels are 8-bit, so the PNG holds the image exactly.
  ASSERT_LE((image.add(1).mul(127.5) - image.add(1).mul(127.5).round()).abs().max().item<double>(),
            1e-4);
  const std::string img = (dir / "img.png").string(), msk = (dir / "mask.png").string();
  write_image(img, image);
  write_mask(msk, mask);
  const auto out = dir / "out";
  auto r = run(concat({"--device",
                       "cpu",
                       "inpaint",
                       "--method",
                       "copaint",
                       "--model",
                       "adm",
                       "--checkpoint",
                       kTrained,
                       "--image",
                       img,
                       "--mask",
                       msk,
                       "--init-noise",
                       fixture,
                       "--set",
                       "copaint.respacing=50",
                       "--set",
                       "copaint.steps=25",
                       "--save-tensors",
                       "--out",
                       out.string()},
                      tiny_adm_args()));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("UNet evaluations: "), std::string::npos) << r.out;
  for (const char* f : {"sample_0.png", "input.png", "mask.png", "samples.pt"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  const at::Tensor input = read_image((out / "input.png").string(), 3);
  EXPECT_LE((input - image).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(read_mask((out / "mask.png").string()).equal(mask));

  const at::Tensor samples =
      read_torch_file((out / "samples.pt").string()).toGenericDict().at("samples").toTensor();
  const double err = (samples - reference).abs().max().item<double>();
  EXPECT_LE(err, 1e-4) << "final sample vs the reference's";
  const at::Tensor sample = read_image((out / "sample_0.png").string(), 3);
  EXPECT_LE((sample - samples[0]).abs().max().item<double>(), 0.5 / 127.5 + 1e-6);
  const at::Tensor known = mask.expand_as(image);
  const double err_known =
      ((sample - image).abs() * known).sum().item<double>() / known.sum().item<double>();
  const double err_unknown = ((sample - image).abs() * (1 - known)).sum().item<double>() /
                             (1 - known).sum().item<double>();
  std::printf(
      "[tiny unet, 25 of 50 steps] vs reference %.3g; known-region MAE %.4f, unknown %.4f\n", err,
      err_known, err_unknown);
  EXPECT_LT(err_known, err_unknown);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
