// Tests of framework/nn/unet.h: layouts of the paper's checkpoints, parity with guided-diffusion on
// the adm_tiny fixtures, load diagnostics, config inference, gradients and fp16 bookkeeping.
#include "framework/nn/unet.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "tests/test_paths.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

using StateDictVec = std::vector<std::pair<std::string, at::Tensor>>;

const std::string kFixtures = std::string(COPAINT_TEST_FIXTURES_DIR) + "/unet/";

bool exists(const std::string& path) { return std::ifstream(path).good(); }

/// Plain dict of tensors written by torch.save.
std::map<std::string, at::Tensor> read_tensor_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const c10::IValue value = torch::jit::pickle_load(bytes);
  std::map<std::string, at::Tensor> out;
  for (const auto& entry : value.toGenericDict()) {
    out[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return out;
}

/// A state_dict with the layout's shapes whose tensors take no memory (for inference tests).
StateDictVec fake_state_dict(const UNetLayout& layout) {
  StateDictVec sd;
  const at::Tensor one = at::zeros({1});
  for (const auto& [name, shape] : layout) {
    std::vector<int64_t> ones(shape.size(), 1);
    sd.emplace_back(name, one.reshape(ones).expand(shape));
  }
  return sd;
}

/// A small config exercising every block kind quickly (used with random weights).
UNetConfig small_config() { return fixtures::small_unet_config(); }

/// Attention rates that change the architecture (those of existing levels), sorted.
std::vector<int> effective_attention(const UNetConfig& c) {
  const int levels = static_cast<int>(c.resolved_channel_mult().size());
  std::vector<int> out;
  for (int ds : c.attention_downsample_rates()) {
    if (ds >= 1 && ds < (1 << levels)) out.push_back(ds);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void expect_layout_matches_json(const UNetLayout& layout, const nlohmann::json& j) {
  const auto& expected = j.at("state_dict");
  ASSERT_EQ(layout.size(), expected.size());
  int64_t count = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    EXPECT_EQ(layout[i].first, expected[i][0].get<std::string>()) << "entry " << i;
    EXPECT_EQ(layout[i].second, expected[i][1].get<std::vector<int64_t>>()) << layout[i].first;
    int64_t n = 1;
    for (auto d : layout[i].second) n *= d;
    count += n;
  }
  EXPECT_EQ(count, j.at("params").get<int64_t>());
}

// --------------------------------------------------------------------------------------------
// Config and layout

TEST(UNetConfig, PresetsAndCanonicalString) {
  const UNetConfig celeba = unet_preset("celebahq256");
  EXPECT_FALSE(celeba.class_cond);
  EXPECT_EQ(celeba.num_head_channels, 64);
  EXPECT_EQ(celeba.resolved_channel_mult(), (std::vector<double>{1, 1, 2, 2, 4, 4}));
  EXPECT_EQ(celeba.attention_downsample_rates(), (std::vector<int>{8, 16, 32}));
  EXPECT_EQ(celeba.out_channels(), 6);
  const UNetConfig imagenet = unet_preset("imagenet256");
  EXPECT_TRUE(imagenet.class_cond);
  EXPECT_EQ(imagenet.num_classes, 1000);
  EXPECT_NE(celeba.to_string(), imagenet.to_string());
  EXPECT_NE(celeba.to_string().find("class_cond=false"), std::string::npos);
  EXPECT_NE(celeba.to_string().find("attention_resolutions=\"32,16,8\""), std::string::npos);
  EXPECT_THROW(unet_preset("celeba"), UsageError);

  UNetConfig bad;
  bad.image_size = 48;
  EXPECT_THROW(bad.resolved_channel_mult(), UsageError);
  bad.channel_mult = "1,x";
  EXPECT_THROW(bad.resolved_channel_mult(), UsageError);
  bad.channel_mult = "0.5,1";
  EXPECT_EQ(bad.resolved_channel_mult(), (std::vector<double>{0.5, 1}));
  bad.attention_resolutions = "16,,a";
  EXPECT_THROW(bad.attention_downsample_rates(), UsageError);
}

TEST(UNetLayout, PresetsMatchThePapersCheckpoints) {
  for (const std::string name : {"celebahq256", "imagenet256"}) {
    SCOPED_TRACE(name);
    const nlohmann::json j = read_json(kFixtures + name + "_layout.json");
    const UNetConfig c = unet_preset(name);
    const UNetConfig fixture = fixtures::unet_config_from_json(j.at("config"));
    EXPECT_EQ(c.num_channels, fixture.num_channels);
    EXPECT_EQ(c.class_cond, fixture.class_cond);
    EXPECT_EQ(c.attention_resolutions, fixture.attention_resolutions);
    EXPECT_EQ(c.num_head_channels, fixture.num_head_channels);
    expect_layout_matches_json(UNet::layout(c), j);
  }
}

TEST(UNetLayoutSlow, PresetConstructionMatchesLayout) {
  // Allocates the 552M-parameter model (2.2 GB).
  const nlohmann::json j = read_json(kFixtures + "celebahq256_layout.json");
  UNet net(unet_preset("celebahq256"));
  expect_layout_matches_json(net.parameter_layout(), j);
  EXPECT_EQ(net.parameter_count(), j.at("params").get<int64_t>());
}

TEST(UNetLayout, TinyConfigsParameterCounts) {
  for (const std::string name : {"adm_tiny", "adm_tiny_cond"}) {
    SCOPED_TRACE(name);
    const nlohmann::json j = read_json(kFixtures + name + "_config.json");
    UNet net(fixtures::unet_config_from_json(j.at("config")));
    EXPECT_EQ(net.parameter_count(), j.at("params").get<int64_t>());
    const auto named = net.named_parameters();
    const auto layout = net.parameter_layout();
    ASSERT_EQ(named.size(), layout.size());
    for (size_t i = 0; i < named.size(); ++i) {
      EXPECT_EQ(named[i].first, layout[i].first);
      EXPECT_EQ(named[i].second.sizes().vec(), layout[i].second);
      EXPECT_FALSE(named[i].second.requires_grad());
    }
  }
}

TEST(UNetLayout, InvalidConfigsAreUsageErrors) {
  UNetConfig c = small_config();
  c.num_channels = 48;  // not divisible by the 32 GroupNorm groups
  EXPECT_THROW(UNet::layout(c), UsageError);
  c = small_config();
  c.num_head_channels = 24;
  EXPECT_THROW(UNet::layout(c), UsageError);
}

// --------------------------------------------------------------------------------------------
// Parity with guided-diffusion

class UNetParity : public ::testing::TestWithParam<std::string> {};

TEST_P(UNetParity, MatchesReferenceOutput) {
  const std::string name = GetParam();
  const nlohmann::json j = read_json(kFixtures + name + "_config.json");
  UNet net(fixtures::unet_config_from_json(j.at("config")));
  net.load(load_state_dict(kFixtures + name + ".pt"));
  auto io = read_tensor_dict(kFixtures + name + "_io.pt");
  const at::Tensor y = io.count("y") ? io.at("y") : at::Tensor();
  const at::Tensor out = net.forward(io.at("x"), io.at("t"), y);
  ASSERT_EQ(out.sizes(), io.at("out").sizes());
  const double err = (out - io.at("out")).abs().max().item<double>();
  const double scale = io.at("out").abs().max().item<double>();
  std::cout << "[ parity ] " << name << ": max abs error " << err << " (output max |.| " << scale
            << ")\n";
  EXPECT_LE(err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, UNetParity, ::testing::Values("adm_tiny", "adm_tiny_cond"));

TEST(UNetLoad, InferConfigRecoversFixtures) {
  for (const std::string name : {"adm_tiny", "adm_tiny_cond"}) {
    SCOPED_TRACE(name);
    const UNetConfig want =
        fixtures::unet_config_from_json(read_json(kFixtures + name + "_config.json")["config"]);
    const UNetConfig got = infer_unet_config(load_state_dict(kFixtures + name + ".pt"), 32);
    EXPECT_EQ(got.image_size, want.image_size);
    EXPECT_EQ(got.num_channels, want.num_channels);
    EXPECT_EQ(got.num_res_blocks, want.num_res_blocks);
    EXPECT_EQ(got.resolved_channel_mult(), want.resolved_channel_mult());
    // adm_tiny_cond lists "16,8" but has no 8x8 level: only 16 can show in the tensors.
    EXPECT_EQ(effective_attention(got), effective_attention(want));
    EXPECT_EQ(got.learn_sigma, want.learn_sigma);
    EXPECT_EQ(got.class_cond, want.class_cond);
    EXPECT_EQ(got.use_scale_shift_norm, want.use_scale_shift_norm);
    EXPECT_EQ(got.resblock_updown, want.resblock_updown);
    if (want.class_cond) EXPECT_EQ(got.num_classes, 1000);
  }
}

// Labels are range-checked on every device (once per label tensor: the methods pass the same one
// to every forward, so a CUDA run pays one host read per batch); here on the CPU.
TEST(UNetForward, LabelsOutsideTheClassesAreRefused) {
  at::manual_seed(0);
  UNet net(small_config());  // 5 classes
  const at::Tensor x = at::zeros({2, 3, 16, 16});
  const at::Tensor t = at::tensor({1, 2}, at::kLong);
  EXPECT_THROW(net.forward(x, t, at::tensor({0, 5}, at::kLong)), InputError);
  EXPECT_THROW(net.forward(x, t, at::tensor({-1, 0}, at::kLong)), InputError);
  const at::Tensor y = at::tensor({0, 4}, at::kLong);
  EXPECT_NO_THROW(net.forward(x, t, y));
  EXPECT_NO_THROW(net.forward(x, t, y));
  EXPECT_THROW(net.forward(x, t, at::tensor({3, 9}, at::kLong)), InputError);
}

TEST(UNetLoad, CondCheckpointIntoUnconditionalConfigNamesLabelEmb) {
  const StateDictVec sd = load_state_dict(kFixtures + "adm_tiny_cond.pt");
  UNetConfig c =
      fixtures::unet_config_from_json(read_json(kFixtures + "adm_tiny_cond_config.json")["config"]);
  c.class_cond = false;
  UNet net(c);
  try {
    net.load(sd);
    FAIL() << "load accepted a class-conditional state_dict into an unconditional config";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    std::cout << "[ message ] " << msg << "\n";
    EXPECT_NE(msg.find("1 unexpected: label_emb.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set class_cond=true"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("missing"), std::string::npos) << msg;
  }
  // Into the (quite different) adm_tiny config: still names label_emb and class_cond.
  UNet other(
      fixtures::unet_config_from_json(read_json(kFixtures + "adm_tiny_config.json")["config"]));
  try {
    other.load(sd);
    FAIL() << "load accepted a mismatching state_dict";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("label_emb.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set class_cond=true"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set channel_mult=1,2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set use_scale_shift_norm=false"), std::string::npos) << msg;
    EXPECT_NE(msg.find("set resblock_updown=false"), std::string::npos) << msg;
  }
}

// --------------------------------------------------------------------------------------------
// Without fixtures: random weights

TEST(UNetLoad, DiagnosesEveryWrongFlag) {
  at::manual_seed(0);
  const UNetConfig base = small_config();
  const StateDictVec sd = UNet(base).named_parameters();

  const auto message_for = [&](UNetConfig c) {
    UNet net(c);
    try {
      net.load(sd);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  UNetConfig c = base;
  c.learn_sigma = false;
  std::string msg = message_for(c);
  EXPECT_NE(msg.find("out.2.weight (file [6,32,3,3], config [3,32,3,3])"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("set learn_sigma=true"), std::string::npos) << msg;

  c = base;
  c.num_channels = 64;
  msg = message_for(c);
  EXPECT_NE(msg.find("set num_channels=32"), std::string::npos) << msg;

  c = base;
  c.use_scale_shift_norm = false;
  msg = message_for(c);
  EXPECT_NE(msg.find("set use_scale_shift_norm=true"), std::string::npos) << msg;

  c = base;
  c.resblock_updown = false;
  msg = message_for(c);
  EXPECT_NE(msg.find("set resblock_updown=true"), std::string::npos) << msg;

  c = base;
  c.class_cond = false;
  msg = message_for(c);
  EXPECT_NE(msg.find("set class_cond=true"), std::string::npos) << msg;

  c = base;
  c.num_classes = 7;
  msg = message_for(c);
  EXPECT_NE(msg.find("set num_classes=5"), std::string::npos) << msg;

  c = base;
  c.attention_resolutions = "16";
  msg = message_for(c);
  EXPECT_NE(msg.find("set attention_resolutions=8"), std::string::npos) << msg;

  c = base;
  c.num_res_blocks = 2;
  msg = message_for(c);
  EXPECT_NE(msg.find("set num_res_blocks=1"), std::string::npos) << msg;

  // Head layout does not change shapes: loads fine, and copies the tensors in.
  c = base;
  c.num_head_channels = -1;
  c.num_heads = 2;
  UNet net(c);
  net.load(sd);
  for (size_t i = 0; i < sd.size(); ++i) {
    EXPECT_TRUE(net.named_parameters()[i].second.equal(sd[i].second)) << sd[i].first;
  }
}

TEST(UNetInfer, RecoversPresetsAndSmallConfigs) {
  std::vector<UNetConfig> configs = {unet_preset("celebahq256"), unet_preset("imagenet256"),
                                     small_config()};
  UNetConfig plain = small_config();
  plain.resblock_updown = false;
  plain.use_scale_shift_norm = false;
  plain.class_cond = false;
  plain.channel_mult = "1,1,2";
  plain.attention_resolutions = "16,4";
  plain.num_res_blocks = 3;
  configs.push_back(plain);
  UNetConfig one_level = small_config();
  one_level.channel_mult = "2";
  one_level.attention_resolutions = "16";
  configs.push_back(one_level);
  for (const UNetConfig& want : configs) {
    SCOPED_TRACE(want.to_string());
    const UNetConfig got = infer_unet_config(fake_state_dict(UNet::layout(want)), want.image_size);
    EXPECT_EQ(got.in_channels, want.in_channels);
    EXPECT_EQ(got.num_channels, want.num_channels);
    EXPECT_EQ(got.num_res_blocks, want.num_res_blocks);
    EXPECT_EQ(got.resolved_channel_mult(), want.resolved_channel_mult());
    EXPECT_EQ(effective_attention(got), effective_attention(want));
    EXPECT_EQ(got.learn_sigma, want.learn_sigma);
    EXPECT_EQ(got.class_cond, want.class_cond);
    if (want.class_cond) EXPECT_EQ(got.num_classes, want.num_classes);
    EXPECT_EQ(got.use_scale_shift_norm, want.use_scale_shift_norm);
    // With a single level nothing resamples, so resblock_updown leaves no trace.
    if (want.resolved_channel_mult().size() > 1) {
      EXPECT_EQ(got.resblock_updown, want.resblock_updown);
    }
  }
  // image_size from the default channel_mult table.
  EXPECT_EQ(
      infer_unet_config(fake_state_dict(UNet::layout(unet_preset("celebahq256"))), 0).image_size,
      256);
  EXPECT_THROW(infer_unet_config(fake_state_dict(UNet::layout(small_config())), 0), UsageError);
  // Not a UNet.
  StateDictVec junk = {{"features.0.weight", at::zeros({3, 3})}};
  EXPECT_THROW(infer_unet_config(junk, 256), InputError);
  StateDictVec partial = fake_state_dict(UNet::layout(small_config()));
  partial.pop_back();
  EXPECT_THROW(infer_unet_config(partial, 16), InputError);
}

TEST(UNetForward, ValidatesInputs) {
  at::manual_seed(0);
  UNet net(small_config());
  const at::Tensor x = at::randn({2, 3, 16, 16});
  const at::Tensor t = at::tensor({10, 500}, at::kLong);
  const at::Tensor y = at::tensor({0, 4}, at::kLong);
  EXPECT_EQ(net.forward(x, t, y).sizes(), (std::vector<int64_t>{2, 6, 16, 16}));
  EXPECT_THROW(net.forward(x, t), InputError);                             // missing y
  EXPECT_THROW(net.forward(at::randn({2, 1, 16, 16}), t, y), InputError);  // channels
  EXPECT_THROW(net.forward(at::randn({2, 3, 15, 16}), t, y), InputError);  // odd size
  EXPECT_THROW(net.forward(x, at::tensor({10}, at::kLong), y), InputError);
  EXPECT_THROW(net.forward(x, t, at::tensor({0, 5}, at::kLong)), InputError);  // label range
  UNetConfig uncond = small_config();
  uncond.class_cond = false;
  UNet plain(uncond);
  EXPECT_THROW(plain.forward(x, t, y), InputError);
  // Float timesteps give the same result as integer ones.
  EXPECT_TRUE(net.forward(x, t, y).allclose(net.forward(x, t.to(at::kFloat), y)));
  // Batch elements are independent.
  const at::Tensor both = net.forward(x, t, y);
  const at::Tensor second = net.forward(x.narrow(0, 1, 1), t.narrow(0, 1, 1), y.narrow(0, 1, 1));
  EXPECT_TRUE(both.narrow(0, 1, 1).allclose(second, 1e-5, 1e-5));
}

TEST(UNetForward, AttentionOrdersAgreeOnlyForOneHead) {
  at::manual_seed(1);
  UNetConfig legacy = small_config();
  legacy.num_head_channels = -1;
  legacy.num_heads = 1;
  UNetConfig modern = legacy;
  modern.use_new_attention_order = true;
  UNet a(legacy), b(modern);
  b.load(a.named_parameters());
  const at::Tensor x = at::randn({1, 3, 16, 16});
  const at::Tensor t = at::tensor({300}, at::kLong);
  const at::Tensor y = at::tensor({2}, at::kLong);
  EXPECT_TRUE(a.forward(x, t, y).allclose(b.forward(x, t, y), 1e-5, 1e-5));
  legacy.num_heads = modern.num_heads = 2;
  UNet c(legacy), d(modern);
  c.load(a.named_parameters());
  d.load(a.named_parameters());
  EXPECT_FALSE(c.forward(x, t, y).allclose(d.forward(x, t, y), 1e-3, 1e-3));
  EXPECT_FALSE(c.forward(x, t, y).allclose(a.forward(x, t, y), 1e-3, 1e-3));
}

TEST(UNetGradient, InputGradientMatchesFiniteDifferences) {
  at::manual_seed(2);
  UNet net(small_config());
  net.to(at::kCPU, at::kDouble);
  const at::Tensor t = at::tensor({123}, at::kLong);
  const at::Tensor y = at::tensor({3}, at::kLong);
  const at::Tensor x0 = at::randn({1, 3, 16, 16}, at::kDouble);
  const at::Tensor x = x0.clone().requires_grad_(true);
  const at::Tensor out = net.forward(x, t, y);
  // A weighted sum so every output channel matters differently.
  const at::Tensor weights = at::randn(out.sizes(), at::kDouble);
  const auto objective = [&](const at::Tensor& in) {
    return (net.forward(in, t, y) * weights).sum();
  };
  const at::Tensor loss = (out * weights).sum();
  const auto grads = torch::autograd::grad({loss}, {x});
  ASSERT_EQ(grads.size(), 1u);
  ASSERT_TRUE(grads[0].defined());
  EXPECT_GT(grads[0].abs().max().item<double>(), 0.0);
  // Parameters are frozen by default: no graph into them.
  for (const auto& p : net.parameters()) EXPECT_FALSE(p.requires_grad());

  const double eps = 1e-5;
  const std::vector<std::vector<int64_t>> probes = {
      {0, 0, 0, 0}, {0, 1, 7, 8}, {0, 2, 15, 3}, {0, 0, 9, 15}, {0, 1, 4, 4}};
  for (const auto& idx : probes) {
    at::Tensor plus = x0.clone(), minus = x0.clone();
    plus.index_put_({idx[0], idx[1], idx[2], idx[3]},
                    x0.index({idx[0], idx[1], idx[2], idx[3]}) + eps);
    minus.index_put_({idx[0], idx[1], idx[2], idx[3]},
                     x0.index({idx[0], idx[1], idx[2], idx[3]}) - eps);
    const double fd =
        (objective(plus).item<double>() - objective(minus).item<double>()) / (2 * eps);
    const double ad = grads[0].index({idx[0], idx[1], idx[2], idx[3]}).item<double>();
    EXPECT_NEAR(ad, fd, 1e-6 + 1e-5 * std::abs(fd))
        << "x[" << idx[1] << "," << idx[2] << "," << idx[3] << "]";
  }

  // Unfrozen parameters receive gradients too.
  net.requires_grad_(true);
  const at::Tensor l2 = net.forward(x0, t, y).sum();
  const auto pg = torch::autograd::grad(
      {l2}, {net.parameter("out.2.weight"), net.parameter("input_blocks.0.0.weight")});
  EXPECT_GT(pg[0].abs().sum().item<double>(), 0.0);
  EXPECT_GT(pg[1].abs().sum().item<double>(), 0.0);
}

TEST(UNetDevice, HalfConvertsOnlyTorsoConvolutions) {
  at::manual_seed(3);
  UNet net(small_config());
  net.to(at::kCPU, at::kHalf);
  for (const auto& [name, p] : net.named_parameters()) {
    const bool torso = name.rfind("input_blocks.", 0) == 0 || name.rfind("middle_block.", 0) == 0 ||
                       name.rfind("output_blocks.", 0) == 0;
    const std::string weight = name.substr(0, name.rfind('.')) + ".weight";
    const bool conv = net.parameter(weight).dim() >= 3;
    EXPECT_EQ(p.scalar_type(), torso && conv ? at::kHalf : at::kFloat) << name;
  }
  net.to(at::kCPU, at::kFloat);
  for (const auto& p : net.parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);
}

TEST(UNetDevice, HalfOnCudaTracksFloat) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::manual_seed(4);
  UNet net(small_config());
  const at::Tensor x = at::randn({2, 3, 16, 16});
  const at::Tensor t = at::tensor({10, 900}, at::kLong);
  const at::Tensor y = at::tensor({1, 2}, at::kLong);
  const at::Tensor ref = net.forward(x, t, y);
  net.to(at::Device(at::kCUDA), at::kFloat);
  const at::Tensor f32 = net.forward(x.cuda(), t.cuda(), y.cuda()).cpu();
  EXPECT_LE((f32 - ref).abs().max().item<double>(), 1e-3);
  net.to(at::Device(at::kCUDA), at::kHalf);
  const at::Tensor f16 = net.forward(x.cuda(), t.cuda(), y.cuda()).cpu();
  EXPECT_EQ(f16.scalar_type(), at::kFloat);
  EXPECT_LE((f16 - ref).abs().max().item<double>(), 0.05 * ref.abs().max().item<double>());
}

}  // namespace
}  // namespace copaint
