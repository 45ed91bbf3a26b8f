// Tests of framework/nn/flops.h and FlopCounter (framework/nn/onednn_ops.h): the counter's per-op
// counts, backward counting and nesting; the analytic UNet forward/backward FLOPs against a hand
// count and against what the counter sees over real random-weight UNet passes.
#include "framework/nn/flops.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/core/error.h"
#include "framework/nn/onednn_ops.h"
#include "framework/nn/unet.h"
#include "tests/test_paths.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

bool have_onednn() { return onednn_usable(at::zeros({1})); }

/// Restores the oneDNN switch.
struct OneDnnSwitch {
  bool saved = onednn_ops_enabled();
  explicit OneDnnSwitch(bool on) { set_onednn_ops_enabled(on); }
  ~OneDnnSwitch() { set_onednn_ops_enabled(saved); }
};

double fwd_count(const std::function<at::Tensor()>& op) {
  FlopCounter counter;
  op();
  return static_cast<double>(counter.flops());
}

TEST(FlopCounter, CountsEachOpFromItsShapesOnBothPaths) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({2, 8, 10, 12});
  const at::Tensor w3 = at::randn({6, 8, 3, 3}), w1 = at::randn({6, 8, 1, 1}), b = at::randn({6});
  const at::Tensor xl = at::randn({5, 7}), wl = at::randn({4, 7}), bl = at::randn({4});
  const at::Tensor a = at::randn({3, 9}), m = at::randn({9, 11});
  for (bool onednn : {true, false}) {
    SCOPED_TRACE(onednn ? "oneDNN on" : "oneDNN off");
    const OneDnnSwitch sw(onednn);
    // Output elements x in_channels x k x k x 2.
    EXPECT_EQ(fwd_count([&] { return onednn_conv2d(x, w3, b, 1, 1); }),
              2.0 * (2 * 6 * 10 * 12) * 8 * 9);
    EXPECT_EQ(fwd_count([&] { return onednn_conv2d(x, w3, b, 1, 0); }),
              2.0 * (2 * 6 * 8 * 10) * 8 * 9);
    EXPECT_EQ(fwd_count([&] { return onednn_conv2d(x, w3, {}, 2, 1); }),
              2.0 * (2 * 6 * 5 * 6) * 8 * 9);
    EXPECT_EQ(fwd_count([&] { return onednn_conv2d(x, w1, b, 1, 0); }),
              2.0 * (2 * 6 * 10 * 12) * 8);
    EXPECT_EQ(fwd_count([&] { return onednn_linear(xl, wl, bl); }), 2.0 * 5 * 4 * 7);
    EXPECT_EQ(fwd_count([&] { return onednn_mm(a, m); }), 2.0 * 3 * 11 * 9);
    // Other dtypes take the ATen path and count the same.
    EXPECT_EQ(fwd_count([&] { return onednn_mm(a.to(at::kDouble), m.to(at::kDouble)); }),
              2.0 * 3 * 11 * 9);
  }
}

TEST(FlopCounter, CountsOnlyWhileAliveAndNests) {
  const at::Tensor a = at::randn({4, 5}), m = at::randn({5, 6});
  const double one = 2.0 * 4 * 6 * 5;
  onednn_mm(a, m);  // no counter: nothing recorded anywhere
  FlopCounter outer;
  EXPECT_EQ(outer.flops(), 0);
  onednn_mm(a, m);
  {
    FlopCounter inner;
    onednn_mm(a, m);
    onednn_mm(a, m);
    EXPECT_EQ(inner.flops(), 2 * one);
    EXPECT_EQ(inner.calls(), 2);
  }
  EXPECT_EQ(outer.flops(), 3 * one);
  EXPECT_EQ(outer.calls(), 3);
  FlopCounter late;
  EXPECT_EQ(late.flops(), 0);
}

/// FLOPs counted while computing d(sum(out * r))/d(inputs) (the forward not counted).
double backward_count(const at::Tensor& out, const std::vector<at::Tensor>& inputs) {
  const at::Tensor loss = (out * at::randn_like(out)).sum();
  FlopCounter counter;
  torch::autograd::grad({loss}, inputs);
  return static_cast<double>(counter.flops());
}

TEST(FlopCounter, CountsBackwardOfEveryOperandThatNeedsAGradient) {
  at::manual_seed(1);
  const at::Tensor w3 = at::randn({6, 8, 3, 3}), b = at::randn({6});
  const double conv = 2.0 * (2 * 6 * 10 * 12) * 8 * 9, strided = 2.0 * (2 * 6 * 5 * 6) * 8 * 9;
  for (bool onednn : {true, false}) {
    SCOPED_TRACE(onednn ? "oneDNN on" : "oneDNN off");
    const OneDnnSwitch sw(onednn);
    const at::Tensor x = at::randn({2, 8, 10, 12}).requires_grad_(true);
    // Frozen weights: the input gradient costs one forward (oneDNN: a conv through onednn_conv2d;
    // ATen: the hook on the result).
    {
      FlopCounter all;  // alive at the forwards: the ATen paths register their hooks
      const at::Tensor y = onednn_conv2d(x, w3, b, 1, 1);
      EXPECT_EQ(backward_count(y, {x}), conv);
      const at::Tensor z = onednn_conv2d(x, w3, b, 2, 1);  // stride 2: ATen on both
      EXPECT_EQ(backward_count(z, {x}), strided);
      // Trainable weight: input and weight gradients.
      const at::Tensor wt = w3.clone().requires_grad_(true);
      EXPECT_EQ(backward_count(onednn_conv2d(x, wt, b, 1, 1), {x, wt}), 2 * conv);
      // mm with both operands needing gradients: two products of the forward's size.
      const at::Tensor a = at::randn({3, 9}).requires_grad_(true);
      const at::Tensor m = at::randn({9, 11}).requires_grad_(true);
      EXPECT_EQ(backward_count(onednn_mm(a, m), {a, m}), 2 * 2.0 * 3 * 11 * 9);
      // linear, frozen weight: one product.
      const at::Tensor xl = at::randn({5, 7}).requires_grad_(true);
      EXPECT_EQ(backward_count(onednn_linear(xl, at::randn({4, 7}), {}), {xl}), 2.0 * 5 * 4 * 7);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Analytic UNet counts

TEST(UNetFlops, MatchesAHandCountOfASmallNetwork) {
  // One level, no res blocks outside the middle, attention only in the middle block.
  UNetConfig c;
  c.image_size = 8;
  c.in_channels = 3;
  c.num_channels = 32;
  c.num_res_blocks = 0;
  c.channel_mult = "1";
  c.attention_resolutions = "";
  c.learn_sigma = false;
  c.use_scale_shift_norm = true;
  const double hw = 8 * 8, ch = 32, emb = 4 * ch;
  const double time_embed = 2 * (ch * emb + emb * emb);
  const double input_conv = 2 * (ch * hw) * 3 * 9;
  const double res_convs = 2 * 2 * (ch * hw) * ch * 9, res_linear = 2 * emb * (2 * ch);
  const double qkv = 2 * (3 * ch * hw) * ch, proj = 2 * (ch * hw) * ch;
  const double attn_mm = 2 * 2 * hw * hw * ch;
  // Output block: res block from ch + skip (ch) to ch, with a 1x1 skip conv.
  const double out_res =
      2 * (ch * hw) * (2 * ch) * 9 + 2 * (ch * hw) * ch * 9 + 2 * (ch * hw) * (2 * ch);
  const double out_conv = 2 * (3 * hw) * ch * 9;
  for (int64_t batch : {1, 3}) {
    const UNetFlops f = unet_forward_flops_breakdown(c, batch, 8, 8);
    EXPECT_DOUBLE_EQ(f.linear, batch * (time_embed + 3 * res_linear));
    EXPECT_DOUBLE_EQ(f.attention, batch * attn_mm);
    EXPECT_DOUBLE_EQ(f.conv,
                     batch * (input_conv + 2 * res_convs + qkv + proj + out_res + out_conv));
    EXPECT_DOUBLE_EQ(unet_forward_flops(c, batch, 8, 8), f.total());
    EXPECT_DOUBLE_EQ(unet_backward_to_input_flops(c, batch, 8, 8), f.conv + 2 * f.attention);
  }
  // A 16x8 map: every conv and linear scales with pixels or not at all, attention with pixels^2.
  const UNetFlops big = unet_forward_flops_breakdown(c, 1, 16, 8);
  EXPECT_DOUBLE_EQ(big.attention, 4 * attn_mm);
  EXPECT_DOUBLE_EQ(big.linear, time_embed + 3 * res_linear);
}

TEST(UNetFlops, RejectsSizesTheNetworkRejects) {
  const UNetConfig c = unet_preset("celebahq256");  // 6 levels: multiples of 32
  EXPECT_GT(unet_forward_flops(c, 1, 64, 96), 0);
  EXPECT_THROW(unet_forward_flops(c, 1, 48, 64), InputError);
  EXPECT_THROW(unet_forward_flops(c, 1, 0, 64), InputError);
  EXPECT_THROW(unet_forward_flops(c, -1, 64, 64), InputError);
  EXPECT_EQ(unet_forward_flops(c, 0, 64, 64), 0);
  // Linear in the batch.
  EXPECT_DOUBLE_EQ(unet_forward_flops(c, 4, 64, 64), 4 * unet_forward_flops(c, 1, 64, 64));
  EXPECT_DOUBLE_EQ(unet_backward_to_input_flops(c, 2, 64, 64),
                   2 * unet_backward_to_input_flops(c, 1, 64, 64));
}

// ------------------------------------------------------------------------------------------------
// Counter over real passes == analytic

UNetConfig fixture_config(const std::string& name) {
  std::ifstream in(std::string(COPAINT_TEST_FIXTURES_DIR) + "/unet/" + name);
  return fixtures::unet_config_from_json(nlohmann::json::parse(in).at("config"));
}

struct PassCase {
  std::string name;
  std::string fixture;  ///< tests/fixtures/unet config json, or "" for `config`
  UNetConfig config;
  int64_t batch, height, width;
};

class UNetFlopsCounted : public ::testing::TestWithParam<PassCase> {};

/// Counted FLOPs of one forward with x requiring grad and of the backward to x.
void expect_counts_match(const UNetConfig& config, int64_t batch, int64_t height, int64_t width) {
  at::manual_seed(3);
  const UNet net(config);
  const at::Tensor x = at::randn({batch, config.in_channels, height, width}).requires_grad_(true);
  const at::Tensor t = at::randint(0, 1000, {batch}, at::kLong);
  const at::Tensor y =
      config.class_cond ? at::randint(0, config.num_classes, {batch}, at::kLong) : at::Tensor();
  const double fwd = unet_forward_flops(config, batch, height, width);
  const double bwd = unet_backward_to_input_flops(config, batch, height, width);
  {
    at::NoGradGuard no_grad;
    FlopCounter counter;
    net.forward(x, t, y);
    EXPECT_NEAR(static_cast<double>(counter.flops()), fwd, 1e-12 * fwd) << "no-grad forward";
  }
  at::Tensor out;
  {
    FlopCounter counter;
    out = net.forward(x, t, y);
    EXPECT_NEAR(static_cast<double>(counter.flops()), fwd, 1e-12 * fwd) << "forward with grad";
  }
  const at::Tensor loss = (out * at::randn_like(out)).sum();
  FlopCounter counter;
  const auto g = torch::autograd::grad({loss}, {x});
  EXPECT_NEAR(static_cast<double>(counter.flops()), bwd, 1e-12 * bwd) << "backward to x";
  EXPECT_EQ(g[0].sizes(), x.sizes());
}

TEST_P(UNetFlopsCounted, ForwardAndBackwardToInputEqualTheAnalyticCounts) {
  if (!have_onednn()) GTEST_SKIP() << "ATen built without MKLDNN: attention is not counted";
  const PassCase& p = GetParam();
  UNetConfig config = p.config;
  if (!p.fixture.empty()) {
    ASSERT_TRUE(std::ifstream(std::string(COPAINT_TEST_FIXTURES_DIR) + "/unet/" + p.fixture).good())
        << "committed fixture missing: tests/fixtures/unet/" << p.fixture;
    config = fixture_config(p.fixture);
  }
  const OneDnnSwitch sw(true);
  expect_counts_match(config, p.batch, p.height, p.width);
}

UNetConfig odd_config() {
  // Odd image channels (5, learn_sigma: 10 out), 96-channel second level (multiplier 1.5),
  // 3-channel heads in the new attention order, one res block, attention at both levels.
  UNetConfig c;
  c.image_size = 16;
  c.in_channels = 5;
  c.num_channels = 64;
  c.channel_mult = "1,1.5";
  c.num_res_blocks = 1;
  c.attention_resolutions = "16,8";
  c.num_heads = 32;
  c.num_head_channels = -1;
  c.use_new_attention_order = true;
  c.learn_sigma = true;
  c.use_scale_shift_norm = false;
  c.resblock_updown = true;
  return c;
}

UNetConfig three_level_config() {
  // Three levels with conv resampling (stride-2 convs), class-conditional, attention at two
  // resolutions (8 and 4 of a 16 image), no learn_sigma.
  UNetConfig c;
  c.image_size = 16;
  c.num_channels = 32;
  c.channel_mult = "1,2,2";
  c.num_res_blocks = 1;
  c.attention_resolutions = "8,4";
  c.num_head_channels = 32;
  c.class_cond = true;
  c.num_classes = 7;
  c.learn_sigma = false;
  c.resblock_updown = false;
  return c;
}

INSTANTIATE_TEST_SUITE_P(
    Configs, UNetFlopsCounted,
    ::testing::Values(PassCase{"tiny_b1", "adm_tiny_config.json", {}, 1, 32, 32},
                      PassCase{"tiny_b3", "adm_tiny_config.json", {}, 3, 16, 16},
                      PassCase{"tiny_cond_b1", "adm_tiny_cond_config.json", {}, 1, 32, 32},
                      PassCase{"tiny_cond_b3", "adm_tiny_cond_config.json", {}, 3, 16, 16},
                      PassCase{"odd_b1", "", odd_config(), 1, 16, 16},
                      PassCase{"odd_b3_16x8", "", odd_config(), 3, 16, 8},
                      PassCase{"three_level_b1", "", three_level_config(), 1, 32, 32},
                      PassCase{"three_level_b3", "", three_level_config(), 3, 16, 16}),
    [](const ::testing::TestParamInfo<PassCase>& info) { return info.param.name; });

// The paper's architecture (552M parameters, ~2 GB of random weights): 64x64, batch 1.
TEST(UNetFlops, CelebAHQ256CountedEqualsAnalyticSlow) {
  if (!have_onednn()) GTEST_SKIP() << "ATen built without MKLDNN: attention is not counted";
  const OneDnnSwitch sw(true);
  expect_counts_match(unet_preset("celebahq256"), 1, 64, 64);
}

}  // namespace
}  // namespace copaint
