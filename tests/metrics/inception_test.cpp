// The FID Inception: parity of pool3 features with pytorch-fid on formula weights
// (tests/fixtures/fid/inception_io.pt, made by generate_fid_fixtures.py), weight-file loading
// through copaint::load_state_dict, and the one-line errors for missing or foreign weight files.
#include "metrics/inception.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "metrics/fid.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) {
  return std::string(COPAINT_TEST_FIXTURES_DIR) + "/fid/" + name;
}

at::Tensor entry(const StateDict& dict, const std::string& name) {
  for (const auto& [key, value] : dict) {
    if (key == name) return value;
  }
  throw std::runtime_error("fixture has no entry " + name);
}

/// The formula network, built once (24M parameters take a moment).
const FidInception& formula_network() {
  static const FidInception network(fid_inception_formula_weights(), "formula weights");
  return network;
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(FidInception, LayerTableHasTorchvisionNamesAndShapes) {
  const auto shapes = fid_inception_shapes();
  EXPECT_EQ(shapes.size(), 94u * 5u);  // 94 BasicConv2d: conv weight and four batch-norm tensors
  EXPECT_EQ(shapes.front().first, "Conv2d_1a_3x3.conv.weight");
  EXPECT_EQ(shapes.front().second, (std::vector<int64_t>{32, 3, 3, 3}));
  int64_t parameters = 0;
  for (const auto& [name, shape] : shapes) {
    if (name.find("running") == std::string::npos) {
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      parameters += n;
    }
  }
  // torchvision's Inception3(num_classes=1008, aux_logits=False) without fc: 21,785,568
  // parameters (counted with torchvision 0.26).
  EXPECT_EQ(parameters, 21785568);
}

TEST(FidInception, FeaturesMatchPytorchFid) {
  const StateDict io = load_state_dict(fixture("inception_io.pt"));
  const FidInception& net = formula_network();
  for (const std::string set : {"rgb", "gray"}) {
    const at::Tensor expected = entry(io, set + "_features");
    const at::Tensor got = net.features(entry(io, set) * 2 - 1);  // [0,1] -> our [-1,1]
    ASSERT_EQ(got.sizes(), expected.sizes()) << set;
    const double scale = expected.abs().max().item<double>();
    const double err = (got.to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>();
    std::cout << set << ": max |feature| " << scale << ", max abs error " << err << "\n";
    EXPECT_LT(err, 1e-4 * scale) << set;
  }
}

TEST(FidInception, LoadsAFileAndSharesItBetweenMetrics) {
  const fs::path file = fs::temp_directory_path() / "copaint_fid_formula.safetensors";
  write_safetensors(file.string(), fid_inception_formula_weights());
  const SharedInception a = load_shared_inception(file.string());
  const SharedInception b = load_shared_inception(file.string());
  EXPECT_EQ(a.network.get(), b.network.get());
  EXPECT_EQ(a.weights_sha256.size(), 64u);
  FidMetric fid(a);
  KidMetric kid(b, KidParams{});
  EXPECT_EQ(fid.feature_key(), "fid_inception_pool3:" + a.weights_sha256);
  EXPECT_EQ(fid.feature_key(), kid.feature_key());
  const at::Tensor images = at::rand({2, 1, 24, 24}) * 2 - 1;
  const at::Tensor f = fid.features(images);
  EXPECT_EQ(f.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::equal(f, formula_network().features(images).to(at::kDouble)));
  fs::remove(file);
}

TEST(FidInception, MissingOrForeignWeightsAreOneLineErrors) {
  EXPECT_THROW(FidInception(""), UsageError);
  const std::string missing = error_of([] { FidInception("/nonexistent/pt_inception.pth"); });
  EXPECT_NE(missing.find("'/nonexistent/pt_inception.pth' not found"), std::string::npos);
  EXPECT_NE(missing.find(kFidInceptionWeightsUrl), std::string::npos);
  // A file with a few of the tensors and one of torchvision's auxiliary classifier.
  const std::string partial = error_of([] { FidInception(fixture("partial.pth")); });
  EXPECT_NE(partial.find("lacks Conv2d_1a_3x3.bn.bias"), std::string::npos) << partial;
  EXPECT_NE(partial.find("AuxLogits.fc.weight"), std::string::npos) << partial;
  EXPECT_THROW(FidInception(fixture("partial.pth")), InputError);
  // torchvision's 1000-class fc is refused by shape.
  InceptionTensors weights = fid_inception_formula_weights();
  for (auto& [name, t] : weights) {
    if (name == "fc.weight") t = at::zeros({1000, 2048});
  }
  const std::string classes = error_of([&] { FidInception(weights, "torchvision file"); });
  EXPECT_NE(classes.find("'fc.weight' has shape [1000, 2048]"), std::string::npos) << classes;
  EXPECT_THROW(formula_network().features(at::zeros({1, 2, 8, 8})), InputError);
}

// The formula weights are recognised as a stand-in (scores named fid_standin, kid_standin),
// weights that differ from them in one value are not.
TEST(FidInception, RecognisesTheFormulaStandIn) {
  InceptionTensors tensors = fid_inception_formula_weights();
  EXPECT_TRUE(FidInception(tensors, "formula").stand_in());
  tensors.front().second = tensors.front().second.clone();
  tensors.front().second.view({-1})[0] += 1e-3;
  EXPECT_FALSE(FidInception(tensors, "changed").stand_in());
}

}  // namespace
}  // namespace copaint
