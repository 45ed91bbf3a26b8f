// The gradient guard of the gradient-based methods (methods/gradients.h): non-finite losses and
// gradients are counted per sample, recomputed with a scaled loss in reduced precision, and no
// sample degrades without a trace, in CoPaint and DPS, on a network forced to overflow in its
// half-precision backward and on the tiny UNet in bf16.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "datasets/masks.h"
#include "framework/core/registry.h"
#include "framework/diffusion/model.h"
#include "framework/nn/denoisers.h"
#include "methods/gradients.h"
#include "methods/method.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

/// (gain * x)^2 per entry computed in float16, summed in float32: finite forward for |x| <= 1,
/// but the backward's 2 * gain^2 * x overflows float16 (80000 > 65504) at gain 200, |x| = 1.
at::Tensor half_square_loss(const at::Tensor& x, double gain) {
  const at::Tensor y = x.to(at::kHalf) * gain;
  return (y * y).to(at::kFloat).reshape({x.size(0), -1}).sum(1);
}

TEST(GuardedGrad, CountsAndRecomputesAnOverflowedRowWithAScaledLoss) {
  const at::Tensor x = at::tensor({0.01f, 0.01f, 1.0f, 1.0f, 0.02f, 0.02f}).reshape({3, 2});
  const at::Tensor xr = x.clone().requires_grad_(true);
  EvalCounter counter;
  const GuardedGrad g = guarded_grad(half_square_loss(xr, 200), xr, /*reduced=*/true, counter);
  EXPECT_TRUE(at::equal(g.nonfinite, at::tensor({0, 1, 0}).to(at::kBool)));
  EXPECT_TRUE(at::equal(counter.nonfinite_grads, at::tensor({0, 1, 0}, at::kLong)));
  EXPECT_TRUE(at::isfinite(g.grad).all().item<bool>());
  // The recomputed row is the exact gradient 2 gain^2 x = 80000.
  EXPECT_FLOAT_EQ(g.grad[1][0].item<float>(), 80000.0f);
  EXPECT_FLOAT_EQ(g.grad[1][1].item<float>(), 80000.0f);
  EXPECT_EQ(counter.backwards, 2);  // the first try and one retry at 2^-8
}

TEST(GuardedGrad, Float32ReturnsTheGradientAsComputedAndStillCounts) {
  const at::Tensor x = at::tensor({0.01f, 0.01f, 1.0f, 1.0f}).reshape({2, 2}).requires_grad_(true);
  EvalCounter counter;
  const GuardedGrad g = guarded_grad(half_square_loss(x, 200), x, /*reduced=*/false, counter);
  EXPECT_TRUE(at::equal(counter.nonfinite_grads, at::tensor({0, 1}, at::kLong)));
  EXPECT_TRUE(at::isinf(g.grad[1]).all().item<bool>());  // no remedy, but a trace
  EXPECT_EQ(counter.backwards, 1);
}

TEST(GuardedGrad, ARowNoScaleFixesGetsAZeroGradientAndIsCounted) {
  // sqrt(|x|) has an infinite derivative at 0 whatever the loss scale.
  const at::Tensor x = at::tensor({0.5f, 0.0f, 0.25f, 0.5f}).reshape({2, 2}).requires_grad_(true);
  EvalCounter counter;
  counter.nonfinite_grads = at::tensor({2, 0}, at::kLong);  // counts add up over steps
  const GuardedGrad g = guarded_grad(at::sqrt(x.abs()).sum(1), x, /*reduced=*/true, counter);
  EXPECT_TRUE(at::equal(counter.nonfinite_grads, at::tensor({3, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(g.grad[0], at::zeros({2})));
  EXPECT_TRUE(at::isfinite(g.grad[1]).all().item<bool>());
  EXPECT_EQ(counter.backwards, 4);  // the first try and three retries
}

TEST(GuardedGrad, ANonFiniteLossCountsItsRow) {
  const at::Tensor x = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({2, 2}).requires_grad_(true);
  const at::Tensor loss = x.sum(1) * at::tensor({1.0f, std::numeric_limits<float>::infinity()});
  EvalCounter counter;
  guarded_grad(loss, x, /*reduced=*/false, counter);
  EXPECT_TRUE(at::equal(counter.nonfinite_grads, at::tensor({0, 1}, at::kLong)));
}

/// A network whose eps is x, computed in float16 through x + ((x - detach(x)) * 2^-15) * 2^15:
/// the extra term is exactly 0 forward, and its backward multiplies the incoming gradient by 2^15
/// before scaling it back, so any gradient component of magnitude 2 or more overflows float16 on
/// the way back (an overflow inside the backward, as in an fp16 torso) while the true gradient is
/// twice the incoming one. `reduced` says whether the network admits its reduced precision.
class OverflowingDenoiser : public Denoiser {
 public:
  explicit OverflowingDenoiser(bool reduced) : reduced_(reduced) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor&, const at::Tensor&) override {
    const at::Tensor h = x.to(at::kHalf);
    return (h + ((h - h.detach()) * std::ldexp(1.0, -15)) * std::ldexp(1.0, 15)).to(at::kFloat);
  }
  int64_t image_size() const override { return 8; }
  int64_t channels() const override { return 3; }
  bool reduced_precision() const override { return reduced_; }
  void to(const c10::Device&) override {}
  std::string describe() const override { return "overflowing test network"; }

 private:
  bool reduced_;
};

InpaintOutput run_method(Denoiser& model, const std::string& name, const Options& options) {
  register_builtin_methods();
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t size = model.image_size();
  InpaintInput in;
  in.image = at::rand({2, 3, size, size}, g) * 1.6 - 0.8;
  in.mask = half_mask(size, size).unsqueeze(0).expand({2, 1, size, size}).to(at::kFloat);
  in.generators = {at::make_generator<at::CPUGeneratorImpl>(3),
                   at::make_generator<at::CPUGeneratorImpl>(4)};
  return Registry<Method>::global().create(name, options)->run(model, in);
}

// Forced overflow: every sample's gradient overflows at some step. With the guard the samples
// come out finite and the counts say how often; without it (a network that does not admit its
// reduced precision) the counts still say so: no sample degrades without a trace.
TEST(GuardedGrad, CoPaintAndDpsCountForcedOverflowsAndStayFinite) {
  for (const std::string method : {"copaint", "dps"}) {
    const Options options = method == "copaint"
                                ? Options{{"respacing", "6"}, {"G", "2"}, {"lr_xt", "0.02"}}
                                : Options{{"respacing", "6"}};
    OverflowingDenoiser guarded(true), unguarded(false);
    const InpaintOutput a = run_method(guarded, method, options);
    ASSERT_TRUE(a.evals.nonfinite_grads.defined()) << method;
    EXPECT_GT(a.evals.nonfinite_grads.sum().item<int64_t>(), 0) << method;
    EXPECT_TRUE(at::isfinite(a.sample).all().item<bool>()) << method;
    const InpaintOutput b = run_method(unguarded, method, options);
    EXPECT_GT(b.evals.nonfinite_grads.sum().item<int64_t>(), 0) << method;
    EXPECT_GT(a.evals.backwards, b.evals.backwards) << method << ": the guard recomputes";
    EXPECT_FALSE(at::equal(a.sample, b.sample)) << method << ": recomputed gradients moved it";
  }
}

// bf16 on the CPU stands in for fp16: the tiny UNet's bf16 torso gives finite gradients, counted
// as zero per sample (defined, so a stored 0 means checked, not unknown).
TEST(GuardedGrad, TinyUNetInBf16CountsNoNonFiniteGradient) {
  UNetRunOptions run;
  run.precision = Precision::kBf16;
  auto model = UNetDenoiser::from_checkpoint(
      fixtures::tiny_config(), fixtures::kFixtures + "/unet/adm_tiny_trained.pt", run);
  model->to(at::Device(at::kCPU));
  ASSERT_TRUE(model->reduced_precision());
  const InpaintOutput out = run_method(*model, "copaint", {{"respacing", "4"}, {"G", "2"}});
  ASSERT_TRUE(out.evals.nonfinite_grads.defined());
  EXPECT_TRUE(at::equal(out.evals.nonfinite_grads, at::zeros({2}, at::kLong)));
  EXPECT_TRUE(at::isfinite(out.sample).all().item<bool>());
}

}  // namespace
}  // namespace copaint
