// LPIPS parity with the `lpips` package (shared fixtures: random trunks + real v0.1 heads, both
// as re-saved plain dicts and as the original legacy OrderedDict files), weight-file handling,
// grey input, broadcasting and the Metric wrappers.
#include "metrics/lpips.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "metrics/metric.h"
#include "tests/metrics/fixture_util.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

const std::string kShared = COPAINT_SHARED_DIR;
std::string io_file(const std::string& b) { return kShared + "/fixtures/lpips/" + b + "_io.pt"; }
std::string trunk_file(const std::string& b) {
  return kShared + "/fixtures/lpips/" + b + "_random_trunk.pt";
}
std::string plain_heads(const std::string& b) {
  return kShared + "/weights/lpips_v0.1/" + b + ".pth";
}
std::string original_heads(const std::string& b) {
  return kShared + "/weights/lpips_v0.1_original/" + b + ".pth";
}

/// Random trunk and heads with the names and shapes LPIPS expects (real ImageNet trunks are not
/// available here; parity with real structure is checked by the shared fixtures).
LpipsTensors random_trunk(const std::string& backbone) {
  LpipsTensors trunk;
  for (const auto& [name, shape] : lpips_trunk_shapes(backbone)) {
    const double fan_in = shape.size() == 4 ? double(shape[1] * shape[2] * shape[3]) : 1.0;
    trunk.emplace_back(name, shape.size() == 4 ? at::randn(shape) * std::sqrt(2.0 / fan_in)
                                               : at::randn(shape) * 0.01);
  }
  return trunk;
}

LpipsTensors random_heads(const std::string& backbone) {
  LpipsTensors heads;
  const std::vector<int64_t> widths = lpips_head_channels(backbone);
  for (size_t k = 0; k < widths.size(); ++k) {
    heads.emplace_back("lin" + std::to_string(k) + ".model.1.weight",
                       at::rand({1, widths[k], 1, 1}) * 0.1);
  }
  return heads;
}

struct Io {
  at::Tensor a, b, distance, big_a, big_b, big_distance, same_distance;
};
Io load_io(const std::string& backbone) {
  const auto d = testing::load_plain_dict(io_file(backbone));
  return {testing::get(d, "a"),
          testing::get(d, "b"),
          testing::get(d, "distance"),
          testing::get(d, "big_a"),
          testing::get(d, "big_b"),
          testing::get(d, "big_distance"),
          testing::get(d, "same_distance")};
}

void expect_parity(const Lpips& lpips, const Io& io, const std::string& what) {
  const double e_small = testing::max_abs_diff(lpips(io.a, io.b), io.distance);
  const double e_big = testing::max_abs_diff(lpips(io.big_a, io.big_b), io.big_distance);
  const double e_same = testing::max_abs_diff(lpips(io.a, io.a), io.same_distance);
  std::cout << what << ": max abs error distance " << e_small << ", big_distance " << e_big
            << ", same_distance " << e_same << "\n";
  EXPECT_LT(e_small, 1e-4) << what;
  EXPECT_LT(e_big, 1e-4) << what;
  EXPECT_LT(e_same, 1e-4) << what;
}

class LpipsParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    for (const std::string& f : {io_file(GetParam()), trunk_file(GetParam())}) {
      if (!testing::exists(f)) GTEST_SKIP() << "shared LPIPS fixture absent: " << f;
    }
  }
};

TEST_P(LpipsParity, PlainDictHeads) {
  const std::string b = GetParam();
  if (!testing::exists(plain_heads(b))) GTEST_SKIP() << "LPIPS heads absent: " << plain_heads(b);
  const Lpips lpips(b, testing::load_plain_dict(plain_heads(b)),
                    testing::load_plain_dict(trunk_file(b)));
  EXPECT_EQ(lpips.name(), "lpips_" + b + "_v0.1");
  expect_parity(lpips, load_io(b), "lpips " + b + " (plain-dict heads)");
}

TEST_P(LpipsParity, OriginalHeadFilesThroughOptions) {
  const std::string b = GetParam();
  if (!testing::exists(original_heads(b))) {
    GTEST_SKIP() << "original LPIPS heads absent: " << original_heads(b);
  }
  LpipsOptions o;
  o.backbone = b;
  o.heads_file = original_heads(b);
  o.trunk_file = trunk_file(b);
  expect_parity(Lpips(o), load_io(b), "lpips " + b + " (original legacy heads, files)");
}

TEST_P(LpipsParity, WeightsFolderWithTorchvisionNames) {
  const std::string b = GetParam();
  if (!testing::exists(original_heads(b))) {
    GTEST_SKIP() << "original LPIPS heads absent: " << original_heads(b);
  }
  const fs::path dir = fs::temp_directory_path() / ("copaint_lpips_dir_" + b);
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(original_heads(b), dir / (b + ".pth"));
  fs::create_symlink(trunk_file(b), dir / lpips_trunk_file_name(b));
  LpipsOptions o;
  o.backbone = b;
  o.weights_dir = dir.string();
  const Lpips lpips(o);
  const Io io = load_io(b);
  EXPECT_LT(testing::max_abs_diff(lpips(io.a, io.b), io.distance), 1e-4);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Backbones, LpipsParity, ::testing::Values("alex", "squeeze"));

TEST(Lpips, MissingHeadsFileNamesFileAndSource) {
  LpipsOptions o;
  o.weights_dir = "/nonexistent/lpips";
  try {
    Lpips l(o);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/nonexistent/lpips/alex.pth"), std::string::npos) << msg;
    EXPECT_NE(msg.find("richzhang/PerceptualSimilarity"), std::string::npos) << msg;
  }
}

TEST(Lpips, MissingTrunkFileNamesFileAndSource) {
  if (!testing::exists(original_heads("alex"))) GTEST_SKIP() << "LPIPS heads absent";
  const fs::path dir = fs::temp_directory_path() / "copaint_lpips_heads_only";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::create_symlink(original_heads("alex"), dir / "alex.pth");
  LpipsOptions o;
  o.weights_dir = dir.string();
  try {
    Lpips l(o);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find((dir / "alexnet-owt-7be5be79.pth").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("download.pytorch.org/models/alexnet-owt-7be5be79.pth"), std::string::npos)
        << msg;
  }
  fs::remove_all(dir);
}

TEST(Lpips, OptionMistakesAreUsageErrors) {
  LpipsOptions o;
  EXPECT_THROW(Lpips{o}, UsageError);  // no weights named
  o.weights_dir = "/tmp";
  o.backbone = "resnet";
  EXPECT_THROW(Lpips{o}, UsageError);
  o.backbone = "alex";
  o.version = "0.0";
  EXPECT_THROW(Lpips{o}, UsageError);
}

TEST(Lpips, WrongTensorsAreInputErrors) {
  at::manual_seed(0);
  const LpipsTensors trunk = random_trunk("alex");
  // Heads of another backbone: lin1 has the wrong width.
  EXPECT_THROW(Lpips("alex", random_heads("vgg"), trunk), InputError);
  EXPECT_THROW(Lpips("alex", random_heads("alex"), {}), InputError);
}

class LpipsProperties : public ::testing::TestWithParam<std::string> {};

TEST_P(LpipsProperties, GreyBroadcastIdentity) {
  at::manual_seed(4);
  const std::string b = GetParam();
  const Lpips lpips(b, random_heads(b), random_trunk(b));
  const at::Tensor ref = at::rand({1, 1, 48, 48}) * 2 - 1;
  const at::Tensor smp = (ref + 0.3 * at::randn({3, 1, 48, 48})).clamp(-1, 1);
  const at::Tensor d = lpips(smp, ref);
  ASSERT_EQ(d.sizes(), at::IntArrayRef({3}));
  EXPECT_GT(d.min().item<double>(), 0.0);
  // Grey input is the replicated RGB image.
  EXPECT_TRUE(
      at::allclose(d, lpips(smp.expand({3, 3, 48, 48}), ref.expand({1, 3, 48, 48})), 1e-5, 1e-7));
  // A [1,...] reference is broadcast.
  EXPECT_TRUE(at::allclose(d, lpips(smp, ref.expand({3, 1, 48, 48})), 1e-5, 1e-7));
  // Per-sample: a batch scores like its samples one by one.
  EXPECT_NEAR(d[1].item<double>(), lpips(smp.narrow(0, 1, 1), ref)[0].item<double>(), 1e-6);
  EXPECT_LT(lpips(smp, smp).abs().max().item<double>(), 1e-7);
}

INSTANTIATE_TEST_SUITE_P(Backbones, LpipsProperties, ::testing::Values("alex", "vgg", "squeeze"));

TEST(LpipsMetric, NamesAndMaskedPasting) {
  at::manual_seed(5);
  LpipsMetric plain(Lpips("squeeze", random_heads("squeeze"), random_trunk("squeeze")));
  LpipsMetric masked(Lpips("squeeze", random_heads("squeeze"), random_trunk("squeeze")), true);
  EXPECT_EQ(plain.name(), "lpips_squeeze_v0.1");
  EXPECT_EQ(masked.name(), "lpips_masked_squeeze_v0.1");
  EXPECT_FALSE(plain.higher_is_better());
  EXPECT_TRUE(masked.needs_mask());

  const at::Tensor ref = at::rand({1, 3, 40, 40}) * 2 - 1;
  const at::Tensor smp = (ref + 0.3 * at::randn({2, 3, 40, 40})).clamp(-1, 1);
  // Nothing unknown: the pasted image is the reference.
  EXPECT_LT(masked.score(smp, ref, at::ones({1, 1, 40, 40})).abs().max().item<double>(), 1e-7);
  // Everything unknown: plain LPIPS. Wrapping with the same weights gives the same numbers.
  at::manual_seed(6);
  const LpipsTensors heads = random_heads("alex"), trunk = random_trunk("alex");
  LpipsMetric p2(Lpips("alex", heads, trunk)), m2(Lpips("alex", heads, trunk), true);
  EXPECT_TRUE(at::allclose(m2.score(smp, ref, at::zeros({2, 1, 40, 40})),
                           p2.score(smp, ref, at::Tensor()), 1e-5, 1e-7));
  // Half known: the known half no longer counts -> differs from plain, and pasting explicitly
  // gives the same score as the masked metric.
  at::Tensor mask = at::zeros({1, 1, 40, 40});
  mask.narrow(2, 0, 20).fill_(1);
  const at::Tensor pasted = mask * ref + (1 - mask) * smp;
  EXPECT_TRUE(
      at::allclose(m2.score(smp, ref, mask), p2.score(pasted, ref, at::Tensor()), 1e-5, 1e-7));
  EXPECT_THROW(m2.score(smp, ref, at::Tensor()), InputError);
  EXPECT_THROW(p2.score(smp * 4, ref, at::Tensor()), InputError);
}

}  // namespace
}  // namespace copaint
