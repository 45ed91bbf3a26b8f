// Tests of how a UNet runs without changing what it computes: activation checkpointing
// (framework/nn/activation_checkpoint.h), channels-last layout, bf16/fp16 precision and the
// UNetDenoiser run options.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>

#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/torch_compat.h"
#include "framework/nn/activation_checkpoint.h"
#include "framework/nn/denoisers.h"
#include "framework/nn/unet.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

UNetConfig small_config() { return fixtures::small_unet_config(); }

struct Inputs {
  at::Tensor x, t, y;
};

Inputs small_inputs() {
  return {at::randn({2, 3, 16, 16}), at::tensor({40, 700}, at::kLong),
          at::tensor({1, 4}, at::kLong)};
}

/// d/dx of sum(forward(x) * w) for fixed random w.
at::Tensor input_gradient(const UNet& net, const Inputs& in, const at::Tensor& weights) {
  const at::Tensor x = in.x.detach().requires_grad_(true);
  const at::Tensor loss = (net.forward(x, in.t, in.y) * weights).sum();
  return torch::autograd::grad({loss}, {x})[0];
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

TEST(Checkpointed, RecomputesInBackwardAndGivesTheSameGradient) {
  int calls = 0;
  const at::Tensor w = at::randn({4, 4});
  const auto fn = [&](const at::Tensor& v) {
    ++calls;
    return at::tanh(at::mm(v, w)).sin();
  };
  const at::Tensor x0 = at::randn({3, 4});
  // Reference: the plain graph.
  const at::Tensor xa = x0.clone().requires_grad_(true);
  const at::Tensor ga = torch::autograd::grad({fn(xa).square().sum()}, {xa})[0];
  calls = 0;
  const at::Tensor xb = x0.clone().requires_grad_(true);
  const at::Tensor yb = checkpointed(fn, xb);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(yb.requires_grad());
  const at::Tensor gb = torch::autograd::grad({yb.square().sum()}, {xb})[0];
  EXPECT_EQ(calls, 2);  // recomputed once by the backward
  EXPECT_TRUE(ga.equal(gb));
  // Without grad mode (or an input without grad) it is fn itself: one call, no graph.
  calls = 0;
  {
    at::NoGradGuard no_grad;
    EXPECT_FALSE(checkpointed(fn, xb).requires_grad());
  }
  EXPECT_FALSE(checkpointed(fn, x0).requires_grad());
  EXPECT_EQ(calls, 2);
  // The output never aliases the input.
  const at::Tensor same = checkpointed([](const at::Tensor& v) { return v; }, xb);
  EXPECT_FALSE(same.is_alias_of(xb));
  EXPECT_TRUE(torch::autograd::grad({same.sum()}, {xb})[0].equal(at::ones_like(xb)));
}

TEST(Checkpointed, RefusesDoubleBackwardAndInPlaceChangesOfTheInput) {
  const at::Tensor w = at::randn({4, 4});
  const auto fn = [&](const at::Tensor& v) { return at::tanh(at::mm(v, w)).sin(); };
  const at::Tensor x0 = at::randn({3, 4});
  // A second derivative through checkpointing would be wrong (the recomputed gradient is not
  // connected to x's graph): refused.
  const at::Tensor x1 = x0.clone().requires_grad_(true);
  const at::Tensor y1 = checkpointed(fn, x1);
  EXPECT_THROW(torch::autograd::grad({y1.square().sum()}, {x1}, {}, true, true), std::exception);
  // The saved input changed in place before the backward: an error, not a wrong gradient.
  const at::Tensor leaf = x0.clone().requires_grad_(true);
  at::Tensor x = leaf * 1.0;
  const at::Tensor y = checkpointed(fn, x);
  {
    at::NoGradGuard no_grad;
    x.add_(1.0);
  }
  EXPECT_THROW(torch::autograd::grad({y.sum()}, {leaf}), std::exception);
}

TEST(UNetRunOptions, CheckpointingKeepsOutputAndInputGradient) {
  at::manual_seed(3);
  UNet net(small_config());
  const Inputs in = small_inputs();
  const at::Tensor weights = at::randn({2, 6, 16, 16});
  const at::Tensor out = net.forward(in.x, in.t, in.y);
  const at::Tensor grad = input_gradient(net, in, weights);
  net.set_checkpointing(true);
  EXPECT_TRUE(net.checkpointing());
  EXPECT_TRUE(net.forward(in.x, in.t, in.y).equal(out));
  const at::Tensor grad_ckpt = input_gradient(net, in, weights);
  EXPECT_LE((grad_ckpt - grad).abs().max().item<double>(), 1e-6 * grad.abs().max().item<double>());
  EXPECT_GT(grad.abs().max().item<double>(), 0.0);
  // Parameter gradients would be lost: refused rather than silently wrong.
  net.requires_grad_(true);
  EXPECT_THROW(input_gradient(net, in, weights), UsageError);
}

TEST(UNetRunOptions, ChannelsLastMatchesContiguous) {
  at::manual_seed(4);
  UNet net(small_config());
  const Inputs in = small_inputs();
  const at::Tensor weights = at::randn({2, 6, 16, 16});
  const at::Tensor out = net.forward(in.x, in.t, in.y);
  const at::Tensor grad = input_gradient(net, in, weights);
  net.set_channels_last(true);
  EXPECT_TRUE(net.channels_last());
  EXPECT_TRUE(
      net.parameter("input_blocks.0.0.weight").is_contiguous(at::MemoryFormat::ChannelsLast));
  const at::Tensor out_cl = net.forward(in.x, in.t, in.y);
  EXPECT_TRUE(out_cl.is_contiguous());
  EXPECT_LE((out_cl - out).abs().max().item<double>(), 1e-4);
  EXPECT_LE(relative_error(input_gradient(net, in, weights), grad), 1e-5);
  // Back to the default layout.
  net.set_channels_last(false);
  EXPECT_TRUE(net.parameter("input_blocks.0.0.weight").is_contiguous());
}

TEST(UNetRunOptions, Bf16TorsoStaysCloseToFloat32) {
  ASSERT_TRUE(fixtures::fixture_exists("unet/adm_tiny_trained.pt"))
      << "committed fixture missing: tests/fixtures/unet/adm_tiny_trained.pt";
  const std::string path = fixtures::kFixtures + "/unet/adm_tiny_trained.pt";
  auto fp32 = UNetDenoiser::from_checkpoint(fixtures::tiny_config(), path);
  UNetRunOptions o;
  o.precision = Precision::kBf16;
  auto bf16 = UNetDenoiser::from_checkpoint(fixtures::tiny_config(), path, o);
  bf16->to(at::kCPU);
  EXPECT_EQ(bf16->unet().torso_dtype(), at::kBFloat16);
  EXPECT_EQ(bf16->unet().parameter("input_blocks.0.0.weight").scalar_type(), at::kBFloat16);
  EXPECT_EQ(bf16->unet().parameter("time_embed.0.weight").scalar_type(), at::kFloat);
  EXPECT_EQ(bf16->unet().parameter("out.2.weight").scalar_type(), at::kFloat);
  EXPECT_NE(bf16->describe().find("precision=bf16"), std::string::npos);
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 3, 32, 32});
  const at::Tensor t = at::tensor({100, 800}, at::kLong);
  const at::Tensor a = fp32->forward(x, t, {}), b = bf16->forward(x, t, {});
  EXPECT_EQ(b.scalar_type(), at::kFloat);
  // bfloat16 keeps 8 mantissa bits: a visible but small change.
  const double err = relative_error(b, a);
  EXPECT_GT(err, 1e-5);
  EXPECT_LT(err, 5e-2);
  // Gradients to the input (what CoPaint needs) run in bf16 too and point the same way.
  const at::Tensor w = at::randn(a.sizes());
  const at::Tensor ga = input_gradient(fp32->unet(), {x, t, {}}, w);
  const at::Tensor gb = input_gradient(bf16->unet(), {x, t, {}}, w);
  EXPECT_EQ(gb.scalar_type(), at::kFloat);
  const double cosine = ((ga * gb).sum() / (ga.norm() * gb.norm())).item<double>();
  EXPECT_GT(cosine, 0.99);
}

TEST(UNetRunOptions, Fp16NeedsCudaUnlessItIsTheCheckpointFlag) {
  at::manual_seed(6);
  UNetRunOptions o;
  o.precision = Precision::kFp16;
  UNetDenoiser strict(std::make_shared<UNet>(small_config()), o);
  if (!cuda_available()) {
    try {
      strict.to(at::kCPU);
      FAIL() << "fp16 on the CPU must be refused";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
    }
  }
  o.fp16_falls_back_on_cpu = true;  // guided-diffusion's use_fp16: warn, run float32
  UNetDenoiser lenient(std::make_shared<UNet>(small_config()), o);
  lenient.to(at::kCPU);
  EXPECT_EQ(lenient.unet().torso_dtype(), at::kFloat);
  EXPECT_NE(lenient.describe().find("precision=fp32"), std::string::npos) << lenient.describe();
}

TEST(UNetRunOptions, DenoiserAppliesLayoutAndCheckpointing) {
  UNetRunOptions o;
  o.channels_last = true;
  o.grad_checkpoint = true;
  UNetDenoiser d(std::make_shared<UNet>(small_config()), o);
  EXPECT_TRUE(d.unet().channels_last());
  EXPECT_TRUE(d.unet().checkpointing());
  EXPECT_EQ(o.to_string(),
            "precision=fp32,channels_last=true,grad_checkpoint=true,cudnn_benchmark=false");
}

TEST(Precision, NamesRoundTrip) {
  for (const char* name : {"fp32", "tf32", "bf16", "fp16"}) {
    EXPECT_STREQ(precision_name(parse_precision(name)), name);
  }
  for (const char* bad : {"", "FP32", "float16", "int8"}) {
    EXPECT_THROW(parse_precision(bad), UsageError) << bad;
  }
  // The CUDA switches leave a CPU device alone.
  const bool before = cuda_tf32_enabled();
  set_cuda_math(at::kCPU, Precision::kTf32, true);
  EXPECT_EQ(cuda_tf32_enabled(), before);
}

}  // namespace
}  // namespace copaint
