// PSNR/SSIM parity with the CoPaint reference (fixture), broadcasting, grey input, the masked
// variants and input checks.
#include "metrics/image_metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "framework/core/error.h"
#include "tests/metrics/fixture_util.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kPsnrSsim = std::string(COPAINT_TEST_FIXTURES_DIR) + "/metrics/psnr_ssim.pt";

class PsnrSsimFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::exists(kPsnrSsim)) << "committed fixture missing: " << kPsnrSsim;
    const auto d = testing::load_plain_dict(kPsnrSsim);
    samples_ = testing::get(d, "samples");
    reference_ = testing::get(d, "reference");
    psnr_ = testing::get(d, "psnr");
    ssim_ = testing::get(d, "ssim");
  }
  at::Tensor samples_, reference_, psnr_, ssim_;
};

TEST_F(PsnrSsimFixture, PsnrMatchesReference) {
  const at::Tensor got = psnr(samples_, reference_);
  ASSERT_EQ(got.sizes(), psnr_.sizes());
  const double err = testing::max_abs_diff(got, psnr_);
  std::cout << "psnr max abs error vs reference: " << err << "\n";
  EXPECT_LT(err, 1e-5);
}

TEST_F(PsnrSsimFixture, SsimMatchesReference) {
  const at::Tensor got = ssim(samples_, reference_);
  ASSERT_EQ(got.sizes(), ssim_.sizes());
  const double err = testing::max_abs_diff(got, ssim_);
  std::cout << "ssim max abs error vs reference: " << err << "\n";
  EXPECT_LT(err, 1e-5);
}

TEST_F(PsnrSsimFixture, BroadcastReferenceEqualsRepeated) {
  const at::Tensor repeated = reference_.repeat({samples_.size(0), 1, 1, 1});
  EXPECT_TRUE(at::allclose(psnr(samples_, reference_), psnr(samples_, repeated)));
  EXPECT_TRUE(at::allclose(ssim(samples_, reference_), ssim(samples_, repeated)));
}

TEST_F(PsnrSsimFixture, DoubleInputMatchesReferenceToo) {
  const at::Tensor got = ssim(samples_.to(at::kDouble), reference_.to(at::kDouble));
  EXPECT_EQ(got.scalar_type(), at::kDouble);
  EXPECT_LT(testing::max_abs_diff(got, ssim_), 1e-5);
}

TEST(ImageMetrics, GreyEqualsReplicatedRgb) {
  at::manual_seed(1);
  const at::Tensor ref = at::rand({1, 1, 32, 32}) * 2 - 1;
  const at::Tensor smp = (ref + 0.2 * at::randn({3, 1, 32, 32})).clamp(-1, 1);
  const at::Tensor ref3 = ref.expand({1, 3, 32, 32}), smp3 = smp.expand({3, 3, 32, 32});
  EXPECT_TRUE(at::allclose(psnr(smp, ref), psnr(smp3, ref3), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(ssim(smp, ref), ssim(smp3, ref3), 1e-5, 1e-6));
  EXPECT_EQ(psnr(smp, ref).sizes(), at::IntArrayRef({3}));
}

TEST(ImageMetrics, IdenticalImagesScorePerfect) {
  at::manual_seed(2);
  const at::Tensor x = at::rand({2, 3, 24, 24}) * 2 - 1;
  EXPECT_TRUE(std::isinf(psnr(x, x)[0].item<double>()));
  EXPECT_NEAR(ssim(x, x).min().item<double>(), 1.0, 1e-5);
}

// Half mask: left half known. The masked metrics must see only their region.
struct HalfMaskCase {
  at::Tensor ref, smp, mask;
  HalfMaskCase() {
    at::manual_seed(3);
    ref = at::rand({1, 3, 16, 16}) * 1.6 - 0.8;
    mask = at::zeros({1, 1, 16, 16});
    mask.narrow(3, 0, 8).fill_(1);
    smp = ref.repeat({2, 1, 1, 1});
    smp.narrow(3, 0, 8).add_(0.15 * at::randn({2, 3, 16, 8}));  // known drift
    smp.narrow(3, 8, 8).add_(0.1 * at::randn({2, 3, 16, 8}));   // inpainted content
    smp.clamp_(-1, 1);
  }
};

TEST(ImageMetrics, PsnrMaskedSeesOnlyUnknownRegion) {
  HalfMaskCase c;
  const at::Tensor got = psnr_masked(c.smp, c.ref, c.mask);
  const at::Tensor crop =
      psnr(c.smp.narrow(3, 8, 8).contiguous(), c.ref.narrow(3, 8, 8).contiguous());
  EXPECT_TRUE(at::allclose(got, crop, 1e-4, 1e-5)) << got << crop;
  // Everything unknown: plain PSNR.
  EXPECT_TRUE(at::allclose(psnr_masked(c.smp, c.ref, at::zeros({2, 1, 16, 16})), psnr(c.smp, c.ref),
                           1e-4, 1e-5));
  // Bool masks work as well.
  EXPECT_TRUE(at::allclose(psnr_masked(c.smp, c.ref, c.mask.to(at::kBool)), got));
}

TEST(ImageMetrics, KnownMseIsMseOnKnownPixelsInSignedSpace) {
  HalfMaskCase c;
  const at::Tensor got = known_mse(c.smp, c.ref, c.mask);
  const at::Tensor expect = (c.smp.narrow(3, 0, 8) - c.ref.narrow(3, 0, 8)).pow(2).mean({1, 2, 3});
  EXPECT_TRUE(at::allclose(got, expect, 1e-5, 1e-7)) << got << expect;
  // Exact known region -> 0 whatever the unknown region holds.
  at::Tensor pasted = c.mask * c.ref + (1 - c.mask) * c.smp;
  EXPECT_LT(known_mse(pasted, c.ref, c.mask).abs().max().item<double>(), 1e-12);
}

TEST(ImageMetrics, MaskedMetricsRejectEmptyRegions) {
  HalfMaskCase c;
  EXPECT_THROW(psnr_masked(c.smp, c.ref, at::ones({1, 1, 16, 16})), InputError);
  EXPECT_THROW(known_mse(c.smp, c.ref, at::zeros({1, 1, 16, 16})), InputError);
  EXPECT_THROW(known_mse(c.smp, c.ref, at::Tensor()), InputError);
  EXPECT_THROW(known_mse(c.smp, c.ref, at::full({1, 1, 16, 16}, 0.5)), InputError);
  EXPECT_THROW(known_mse(c.smp, c.ref, at::ones({1, 1, 8, 16})), InputError);
}

TEST(ImageMetrics, RejectsBadInputWithClearErrors) {
  const at::Tensor x = at::zeros({2, 3, 8, 8});
  EXPECT_THROW(psnr(x - 1.5, x), InputError);                  // out of [-1,1]
  EXPECT_THROW(psnr(x, at::zeros({2, 3, 8, 9})), InputError);  // size mismatch
  EXPECT_THROW(psnr(x, at::zeros({3, 3, 8, 8})), InputError);  // batch mismatch
  EXPECT_THROW(ssim(at::zeros({2, 2, 8, 8}), at::zeros({2, 2, 8, 8})), InputError);  // C = 2
  EXPECT_THROW(ssim(at::zeros({3, 8, 8}), at::zeros({3, 8, 8})), InputError);        // 3-D
  try {
    psnr(x, at::full({1, 3, 8, 8}, 1.5));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("references"), std::string::npos) << e.what();
  }
  // Rounding slack above 1 is accepted.
  EXPECT_NO_THROW(psnr(x + 1.0005, x));
}

}  // namespace
}  // namespace copaint
