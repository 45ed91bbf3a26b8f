// Pillow and OpenCV 8-bit resampling against golden files made by Pillow 9.4 (tests/fixtures/
// datasets/make_golden.py) and against the resampling formulas evaluated here in double precision.
#include "datasets/resample.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "dataset_test_util.h"
#include "datasets/image_folder.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

using testing::fixture;
using testing::load_u8;

void expect_same(const at::Tensor& ours, const std::string& golden) {
  const at::Tensor ref = load_u8(fixture("pillow/" + golden + ".npy"));
  ASSERT_EQ(ours.sizes(), ref.sizes()) << golden;
  const auto diff = (ours.to(at::kInt) - ref.to(at::kInt)).abs();
  EXPECT_EQ(diff.max().item<int>(), 0) << golden << ": " << diff.gt(0).sum().item<int64_t>()
                                       << " of " << diff.numel() << " values differ";
}

TEST(PilResize, BitExactWithPillow) {
  const at::Tensor a = load_u8(fixture("pillow/a.npy"));
  expect_same(pil_resize(a, 16, 20, PilFilter::kBicubic), "a_bicubic_16x20");
  expect_same(pil_resize(a, 50, 41, PilFilter::kBicubic), "a_bicubic_50x41");
  expect_same(pil_resize(a, 13, 23, PilFilter::kBilinear), "a_bilinear_13x23");
  expect_same(pil_resize(a, 14, 18, PilFilter::kBox), "a_box_14x18");
  expect_same(pil_resize(a, 11, 17, PilFilter::kNearest), "a_nearest_11x17");
  expect_same(pil_to_gray(a), "a_gray");
  expect_same(pil_resize(load_u8(fixture("pillow/g.npy")), 7, 9, PilFilter::kBicubic),
              "g_bicubic_7x9");
  expect_same(pil_resize(load_u8(fixture("pillow/b.npy")), 29, 29, PilFilter::kBicubic),
              "b_bicubic_29x29");
}

TEST(PilResize, CenterCropArrAndNormalisationMatchReference) {
  const at::Tensor b = load_u8(fixture("pillow/b.npy"));  // 61x103: two box halvings, then bicubic
  expect_same(center_crop_arr(b, 24), "b_center_crop_24");
  ImageFolderParams p;
  p.size = 24;
  p.preprocess = FolderPreprocess::kCenterCrop;
  const at::Tensor x = ImageFolderDataset::preprocess(b, p, "b");
  const at::Tensor ref = read_npy(fixture("pillow/b_center_crop_24_normalized.npy")).data;
  ASSERT_EQ(x.sizes(), ref.sizes());
  EXPECT_TRUE(at::equal(x, ref)) << (x - ref).abs().max().item<float>();
}

TEST(PilResize, SameSizeIsCopyAndBadInputThrows) {
  const at::Tensor a = load_u8(fixture("pillow/a.npy"));
  EXPECT_TRUE(at::equal(pil_resize(a, 29, 37, PilFilter::kBicubic), a));
  EXPECT_THROW(pil_resize(a.to(at::kFloat), 5, 5, PilFilter::kBicubic), UsageError);
  EXPECT_THROW(pil_resize(a, 0, 5, PilFilter::kBicubic), UsageError);
  EXPECT_THROW(center_crop_arr(a[0], 4), UsageError);
}

// OpenCV's cubic resize evaluated exactly in double precision (A = -0.75, replicated border): the
// fixed-point implementation must be within one grey level everywhere.
TEST(OpenCvCubic, WithinOneLevelOfExactFormula) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor img = at::randint(0, 256, {23, 31}, gen, at::kLong).to(at::kByte);
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{46, 62}, {11, 13}, {40, 17}}) {
    const at::Tensor ours = opencv_resize_cubic_u8(img, oh, ow);
    ASSERT_EQ(ours.sizes(), (at::IntArrayRef{oh, ow}));
    auto w = [](double x) {
      const double A = -0.75;
      x = std::abs(x);
      if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
      if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
      return 0.0;
    };
    auto acc = img.accessor<uint8_t, 2>();
    int64_t worst = 0;
    for (int64_t y = 0; y < oh; ++y) {
      const double fy = (y + 0.5) * 23.0 / oh - 0.5;
      const int64_t sy = static_cast<int64_t>(std::floor(fy));
      for (int64_t x = 0; x < ow; ++x) {
        const double fx = (x + 0.5) * 31.0 / ow - 0.5;
        const int64_t sx = static_cast<int64_t>(std::floor(fx));
        double v = 0;
        for (int i = -1; i <= 2; ++i) {
          for (int j = -1; j <= 2; ++j) {
            const int64_t r = std::clamp<int64_t>(sy + i, 0, 22),
                          c = std::clamp<int64_t>(sx + j, 0, 30);
            v += w(fy - (sy + i)) * w(fx - (sx + j)) * acc[r][c];
          }
        }
        const int64_t expect = std::clamp<int64_t>(std::lround(v), 0, 255);
        worst = std::max<int64_t>(worst, std::abs(expect - ours[y][x].item<int64_t>()));
      }
    }
    EXPECT_LE(worst, 1) << oh << "x" << ow;
  }
  EXPECT_TRUE(at::equal(opencv_resize_cubic_u8(img, 23, 31), img));
}

}  // namespace
}  // namespace copaint
