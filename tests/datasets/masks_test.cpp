// Tests of the analytic masks against the reference's 256x256 bitmaps, and seeded masks.
#include "datasets/masks.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>

#include "datasets/mask.h"
#include "framework/core/registry.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

c10::IValue load_pickle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return torch::jit::pickle_load(bytes);
}

TEST(Masks, MatchReferenceBitmaps256) {
  const std::string path = std::string(COPAINT_SHARED_DIR) + "/fixtures/masks/masks256.pt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "reference masks absent: " << path;
  const auto dict = load_pickle(path).toGenericDict();
  const std::map<std::string, at::Tensor> ours = {{"half", half_mask(256, 256)},
                                                  {"line", line_mask(256, 256)},
                                                  {"sr2", sr2_mask(256, 256)},
                                                  {"expand", expand_mask(256, 256)}};
  for (const auto& [name, mask] : ours) {
    ASSERT_TRUE(dict.contains(name)) << name;
    const auto ref = dict.at(name).toTensor().to(at::kFloat).reshape({1, 256, 256});
    EXPECT_TRUE(at::equal(ref, mask))
        << name << ": " << (ref != mask).sum().item<int64_t>() << " pixels differ";
  }
}

TEST(Masks, AnalyticShapesAndCounts) {
  EXPECT_EQ(half_mask(8, 8).sum().item<float>(), 32);
  EXPECT_EQ(line_mask(8, 8)[0][1][0].item<float>(), 1);
  EXPECT_EQ(line_mask(8, 8)[0][0][0].item<float>(), 0);
  EXPECT_EQ(sr2_mask(8, 8).sum().item<float>(), 16);
  EXPECT_EQ(expand_mask(64, 64).sum().item<float>(), 16 * 16);
  EXPECT_THROW(half_mask(0, 8), UsageError);
}

TEST(Masks, SeededMasksAreDeterministicPerIndex) {
  auto a = random_mask(32, 32, 3, 7, 0.3);
  EXPECT_TRUE(at::equal(a, random_mask(32, 32, 3, 7, 0.3)));
  EXPECT_FALSE(at::equal(a, random_mask(32, 32, 4, 7, 0.3)));
  EXPECT_NEAR(a.mean().item<double>(), 0.3, 0.08);
  auto b = box_mask(64, 64, 1, 0, 0.25);
  EXPECT_TRUE(at::equal(b, box_mask(64, 64, 1, 0, 0.25)));
  EXPECT_NEAR(1 - b.mean().item<double>(), 0.25, 0.05);
}

TEST(Masks, RegisteredByName) {
  register_builtin_masks();
  auto& reg = Registry<MaskGenerator>::global();
  for (const char* n : {"half", "line", "sr2", "expand", "random", "box"})
    EXPECT_TRUE(reg.contains(n)) << n;
  auto m = reg.create("random", Options{{"known_fraction", "1"}})->make(4, 4, 0, 0);
  EXPECT_EQ(m.sum().item<float>(), 16);
  EXPECT_THROW(reg.create("random", Options{{"fraction", "1"}}), UsageError);
}

}  // namespace
}  // namespace copaint
