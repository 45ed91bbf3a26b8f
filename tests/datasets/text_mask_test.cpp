// The `text` mask: the reference's lorem bitmap reproduced exactly at 256 (masks256.pt) and
// resized for other sizes; our rendered stand-in without the file.
#include "datasets/text_mask.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>

#include "dataset_test_util.h"
#include "datasets/mask.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

const std::string kLorem = testing::shared("data/lorem3.npy");
const std::string kMasks = testing::shared("fixtures/masks/masks256.pt");

at::Tensor reference_text_mask() {
  std::ifstream in(kMasks, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto dict = torch::jit::pickle_load(bytes).toGenericDict();
  return dict.at("text").toTensor().to(at::kFloat).reshape({1, 256, 256});
}

TEST(TextMask, MatchesReferenceBitmap256) {
  if (!std::filesystem::exists(kLorem)) GTEST_SKIP() << "reference lorem bitmap absent: " << kLorem;
  if (!std::filesystem::exists(kMasks)) GTEST_SKIP() << "reference masks absent: " << kMasks;
  register_builtin_masks();
  auto gen = Registry<MaskGenerator>::global().create("text", Options{{"path", kLorem}});
  const at::Tensor ours = gen->make(256, 256, 7, 123);
  const at::Tensor ref = reference_text_mask();
  EXPECT_TRUE(at::equal(ours, ref)) << (ours != ref).sum().item<int64_t>() << " pixels differ";
  EXPECT_NE(gen->describe().find("lorem3.npy"), std::string::npos);
}

TEST(TextMask, OtherSizesStayBinaryAndKeepTheTextFraction) {
  if (!std::filesystem::exists(kLorem)) GTEST_SKIP() << "reference lorem bitmap absent: " << kLorem;
  const double hole256 = 1 - text_mask_from_npy(kLorem, 256, 256).mean().item<double>();
  for (int64_t s : {64, 128, 512}) {
    const at::Tensor m = text_mask_from_npy(kLorem, s, s);
    ASSERT_EQ(m.sizes(), (at::IntArrayRef{1, s, s}));
    EXPECT_TRUE(at::equal(m, m.round().clamp(0, 1))) << s << ": not binary";
    EXPECT_NEAR(1 - m.mean().item<double>(), hole256,
                s == 512   ? 0.01
                : s == 128 ? 0.04
                           : 0.08)
        << s;
    EXPECT_TRUE(at::equal(m, text_mask_from_npy(kLorem, s, s)));
  }
}

TEST(TextMask, BitmapErrors) {
  EXPECT_THROW(text_mask_from_npy(testing::fixture("npy/le_f4.npy"), 8, 8),
               InputError);  // 3-d float
  EXPECT_THROW(text_mask_from_npy(testing::fixture("npy/absent.npy"), 8, 8), InputError);
  register_builtin_masks();
  EXPECT_THROW(
      Registry<MaskGenerator>::global().create("text", Options{{"path", "/no/such/lorem.npy"}}),
      InputError);
}

TEST(TextMask, RenderedStandIn) {
  register_builtin_masks();
  auto gen = Registry<MaskGenerator>::global().create("text");
  EXPECT_NE(gen->describe().find("rendered"), std::string::npos);
  const at::Tensor m = gen->make(256, 256, 0, 0);
  EXPECT_TRUE(at::equal(m, rendered_text_mask(256, 256)));
  EXPECT_TRUE(at::equal(m, gen->make(256, 256, 5, 9)));  // independent of image and seed
  EXPECT_TRUE(at::equal(m, (m > 0.5).to(at::kFloat)));
  const double hole = 1 - m.mean().item<double>();
  EXPECT_GT(hole, 0.08);  // the reference's bitmap: 0.14
  EXPECT_LT(hole, 0.25);
  // Several lines of text: unknown pixels in at least 4 separate row bands.
  const at::Tensor rows_with_text = (m[0].sum(1) < 256).to(at::kInt);
  const int64_t starts =
      (rows_with_text.slice(0, 1) - rows_with_text.slice(0, 0, -1)).eq(1).sum().item<int64_t>();
  EXPECT_GE(starts, 4);
  for (int64_t s : {32, 64, 100}) {
    const at::Tensor small = rendered_text_mask(s, s);
    EXPECT_GT(1 - small.mean().item<double>(), 0.04) << s;
  }
  EXPECT_THROW(rendered_text_mask(0, 5), UsageError);
}

TEST(TextMask, FontCoversTheText) {
  for (char c : std::string("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")) {
    EXPECT_NE(text_mask_glyph(c), nullptr) << c;
  }
  EXPECT_EQ(text_mask_glyph('#'), nullptr);
  const char* const* l = text_mask_glyph('l');
  int ink = 0;
  for (int r = 0; r < 7; ++r) {
    for (int c = 0; c < 5; ++c) ink += l[r][c] == '#';
  }
  EXPECT_GT(ink, 5);
}

}  // namespace
}  // namespace copaint
