// Tests of framework/nn/onednn_ops.h: the oneDNN convolution, linear and matmul agree with ATen's
// conv2d/linear/mm in value and in input gradient (first and second order), and fall back to ATen
// where they must (double, trainable weights, strides).
#include "framework/nn/onednn_ops.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <array>

#include "framework/nn/unet.h"

namespace copaint {
namespace {

double max_rel(const at::Tensor& a, const at::Tensor& b) {
  const double scale = std::max(1.0, b.abs().max().item<double>());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / scale;
}

at::Tensor input_grad(const at::Tensor& x, const at::Tensor& out, const at::Tensor& weights) {
  return torch::autograd::grad({(out * weights).sum()}, {x})[0];
}

TEST(OneDnnOps, ConvMatchesAtenInValueAndInputGradient) {
  if (!onednn_usable(at::zeros({1}))) GTEST_SKIP() << "ATen built without MKLDNN";
  at::manual_seed(0);
  struct Case {
    int64_t batch, cin, cout, size, kernel, padding;
  };
  // Small (ATen would use the BLAS) and large problems, 3x3 and 1x1 kernels, an unpadded 3x3.
  for (const Case c : {Case{1, 64, 64, 8, 3, 1}, Case{3, 32, 48, 16, 3, 1},
                       Case{1, 32, 96, 16, 1, 0}, Case{2, 8, 4, 9, 3, 0}}) {
    const at::Tensor w = at::randn({c.cout, c.cin, c.kernel, c.kernel}) * 0.1;
    const at::Tensor b = at::randn({c.cout});
    const at::Tensor x = at::randn({c.batch, c.cin, c.size, c.size}).requires_grad_(true);
    const at::Tensor ours = onednn_conv2d(x, w, b, 1, c.padding);
    const at::Tensor ref = at::conv2d(x, w, b, {1, 1}, {c.padding, c.padding});
    ASSERT_EQ(ours.sizes(), ref.sizes());
    EXPECT_LE(max_rel(ours, ref), 1e-5) << "cin " << c.cin << " kernel " << c.kernel;
    // A non-contiguous upstream gradient (every other output channel).
    const at::Tensor weights =
        at::randn({c.batch, 2 * c.cout, ours.size(2), ours.size(3)}).slice(1, 0, 2 * c.cout, 2);
    EXPECT_LE(max_rel(input_grad(x, ours, weights), input_grad(x, ref, weights)), 1e-5);
  }
  // No bias.
  const at::Tensor x = at::randn({1, 16, 8, 8});
  const at::Tensor w = at::randn({16, 16, 3, 3});
  EXPECT_LE(max_rel(onednn_conv2d(x, w, at::Tensor(), 1, 1), at::conv2d(x, w, {}, 1, 1)), 1e-5);
}

TEST(OneDnnOps, ConvSecondOrderGradient) {
  if (!onednn_usable(at::zeros({1}))) GTEST_SKIP() << "ATen built without MKLDNN";
  at::manual_seed(1);
  const at::Tensor w = at::randn({8, 4, 3, 3}), b = at::randn({8});
  const at::Tensor x0 = at::randn({1, 4, 6, 6});
  const auto grad2 = [&](bool ours) {
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = ours ? onednn_conv2d(x, w, b, 1, 1) : at::conv2d(x, w, b, 1, 1);
    const at::Tensor g = torch::autograd::grad({y.square().sum()}, {x}, {}, true, true)[0];
    return torch::autograd::grad({g.square().sum()}, {x})[0];
  };
  EXPECT_LE(max_rel(grad2(true), grad2(false)), 1e-5);
}

// The flipped weights of the input gradient are cached per weight: equal gradients, reuse, an
// in-place change of the weight is seen, a freed weight's entry goes, and limit 0 disables it.
TEST(OneDnnOps, BackwardWeightCache) {
  if (!onednn_usable(at::zeros({1}))) GTEST_SKIP() << "no oneDNN in this LibTorch";
  set_onednn_backward_cache_limit(int64_t{1} << 30);  // empties nothing (usage is far below)
  const int64_t before = onednn_backward_cache_bytes();
  const at::Tensor x0 = at::randn({1, 128, 6, 6});
  const auto input_grad = [&](const at::Tensor& w, bool onednn) {
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y =
        onednn ? onednn_conv2d(x, w, at::Tensor(), 1, 1) : at::conv2d(x, w, {}, {1, 1}, {1, 1});
    return torch::autograd::grad({(y * y).sum()}, {x})[0];
  };
  {
    at::Tensor w = at::randn({256, 128, 3, 3}) * 0.03;  // 1.2 MB: above the 1 MiB threshold
    const at::Tensor first = input_grad(w, true);
    const int64_t bytes = 256 * 128 * 3 * 3 * 4;
    EXPECT_EQ(onednn_backward_cache_bytes(), before + bytes);
    EXPECT_TRUE(input_grad(w, true).equal(first));  // served from the cache
    EXPECT_EQ(onednn_backward_cache_bytes(), before + bytes);
    EXPECT_LE((first - input_grad(w, false)).abs().max().item<double>(),
              1e-4 * first.abs().max().item<double>());
    {
      at::NoGradGuard no_grad;
      w.mul_(-2);  // a new version: rebuilt, not stale
    }
    const at::Tensor changed = input_grad(w, true);
    EXPECT_LE((changed - input_grad(w, false)).abs().max().item<double>(),
              1e-4 * changed.abs().max().item<double>());
    EXPECT_EQ(onednn_backward_cache_bytes(), before + bytes);
    // Without the cache: the same numbers.
    set_onednn_backward_cache_limit(0);
    EXPECT_EQ(onednn_backward_cache_bytes(), 0);
    EXPECT_TRUE(input_grad(w, true).equal(changed));
    EXPECT_EQ(onednn_backward_cache_bytes(), 0);
    set_onednn_backward_cache_limit(int64_t{1} << 30);
    input_grad(w, true);
    EXPECT_EQ(onednn_backward_cache_bytes(), bytes);
  }
  EXPECT_EQ(onednn_backward_cache_bytes(), 0);  // the weight is gone
  // Small weights are flipped on every call, not kept; so are views (a new tensor each call).
  const at::Tensor small = at::randn({16, 128, 3, 3});
  input_grad(small, true);
  EXPECT_EQ(onednn_backward_cache_bytes(), 0);
  const at::Tensor base = at::randn({256, 128, 3, 3}) * 0.03;
  const at::Tensor view = base.view({256, 128, 3, 3});
  ASSERT_TRUE(view.is_view());
  EXPECT_TRUE(input_grad(view, true).equal(input_grad(base, true)));
  EXPECT_EQ(onednn_backward_cache_bytes(), 256 * 128 * 3 * 3 * 4);  // the base only
  set_onednn_backward_cache_limit(int64_t{4} << 30);
}

TEST(OneDnnOps, ConvFallsBackWhereItMust) {
  at::manual_seed(2);
  const at::Tensor x = at::randn({1, 4, 8, 8});
  const at::Tensor w = at::randn({6, 4, 3, 3}), b = at::randn({6});
  // Stride 2, double, and trainable weights take at::conv2d itself: bitwise equal.
  EXPECT_TRUE(onednn_conv2d(x, w, b, 2, 1).equal(at::conv2d(x, w, b, 2, 1)));
  const at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble), bd = b.to(at::kDouble);
  EXPECT_TRUE(onednn_conv2d(xd, wd, bd, 1, 1).equal(at::conv2d(xd, wd, bd, 1, 1)));
  const at::Tensor wt = w.clone().requires_grad_(true);
  const at::Tensor y = onednn_conv2d(x, wt, b, 1, 1);
  EXPECT_TRUE(y.equal(at::conv2d(x, wt, b, 1, 1)));
  const at::Tensor gw = torch::autograd::grad({y.sum()}, {wt})[0];
  EXPECT_TRUE(gw.defined());
  EXPECT_GT(gw.abs().max().item<double>(), 0.0);
}

TEST(OneDnnOps, SwitchedOffTheyAreTheAtenOps) {
  at::manual_seed(6);
  const at::Tensor x = at::randn({1, 32, 8, 8});
  const at::Tensor w = at::randn({32, 32, 3, 3}), b = at::randn({32});
  const at::Tensor a = at::randn({40, 16}), m = at::randn({16, 40});
  set_onednn_ops_enabled(false);
  EXPECT_FALSE(onednn_usable(x));
  const bool conv_equal = onednn_conv2d(x, w, b, 1, 1).equal(at::conv2d(x, w, b, 1, 1));
  const bool mm_equal = onednn_mm(a, m).equal(at::mm(a, m));
  set_onednn_ops_enabled(true);
  EXPECT_TRUE(conv_equal);
  EXPECT_TRUE(mm_equal);
}

TEST(OneDnnOps, LinearMatchesAten) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({24, 40}), b = at::randn({24});
  const at::Tensor x = at::randn({3, 40}).requires_grad_(true);
  const at::Tensor ours = onednn_linear(x, w, b), ref = at::linear(x, w, b);
  EXPECT_LE(max_rel(ours, ref), 1e-5);
  const at::Tensor weights = at::randn(ref.sizes());
  EXPECT_LE(max_rel(input_grad(x, ours, weights), input_grad(x, ref, weights)), 1e-5);
}

TEST(OneDnnOps, MatmulMatchesAtenForEveryLayout) {
  at::manual_seed(4);
  // Either operand the bigger (which one becomes the oneDNN weight flips), each row-major or a
  // transposed (column-major) view.
  for (const auto& [m, k, n] : {std::array<int64_t, 3>{80, 64, 16}, {16, 64, 80}}) {
    for (const bool a_col : {false, true}) {
      for (const bool b_col : {false, true}) {
        const at::Tensor a = a_col ? at::randn({k, m}).t() : at::randn({m, k});
        const at::Tensor b = b_col ? at::randn({n, k}).t() : at::randn({k, n});
        const at::Tensor ar = a.detach().requires_grad_(true), br = b.detach().requires_grad_(true);
        const at::Tensor ours = onednn_mm(ar, br), ref = at::mm(ar, br);
        ASSERT_EQ(ours.sizes(), ref.sizes());
        EXPECT_LE(max_rel(ours, ref), 1e-5) << m << "x" << k << "x" << n << " " << a_col << b_col;
        const at::Tensor weights = at::randn(ref.sizes());
        const auto g_ours = torch::autograd::grad({(ours * weights).sum()}, {ar, br});
        const auto g_ref = torch::autograd::grad({(ref * weights).sum()}, {ar, br});
        EXPECT_LE(max_rel(g_ours[0], g_ref[0]), 1e-5);
        EXPECT_LE(max_rel(g_ours[1], g_ref[1]), 1e-5);
      }
    }
  }
  // Double falls back to at::mm.
  const at::Tensor ad = at::randn({5, 7}, at::kDouble), bd = at::randn({7, 3}, at::kDouble);
  EXPECT_TRUE(onednn_mm(ad, bd).equal(at::mm(ad, bd)));
}

// The whole float UNet (oneDNN path: convolutions, attention, linears) against the same weights in
// double (ATen path), output and input gradient.
TEST(OneDnnOps, FloatUNetTracksDoubleUNet) {
  UNetConfig c;
  c.image_size = 16;
  c.num_channels = 32;
  c.num_res_blocks = 1;
  c.channel_mult = "1,2";
  c.attention_resolutions = "8";
  c.num_head_channels = 16;
  c.learn_sigma = true;
  c.resblock_updown = true;
  at::manual_seed(5);
  UNet f(c);
  UNet d(c);
  d.load(f.named_parameters());
  d.to(at::kCPU, at::kDouble);
  const at::Tensor x0 = at::randn({2, 3, 16, 16});
  const at::Tensor t = at::tensor({10, 900}, at::kLong);
  const at::Tensor xf = x0.clone().requires_grad_(true);
  const at::Tensor xd = x0.to(at::kDouble).requires_grad_(true);
  const at::Tensor of = f.forward(xf, t), od = d.forward(xd, t);
  EXPECT_LE(max_rel(of, od), 1e-5);
  const at::Tensor weights = at::randn(of.sizes());
  const at::Tensor gf = input_grad(xf, of, weights),
                   gd = input_grad(xd, od, weights.to(at::kDouble));
  EXPECT_LE(max_rel(gf, gd), 1e-5);
}

}  // namespace
}  // namespace copaint
