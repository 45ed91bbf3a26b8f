// The bundled Fashion-MNIST dataset: the real Debian files (skipped when the package is absent),
// test image 0 against the image of the CoPaint fixtures, and IDX/gzip error handling.
#include "datasets/fashion_mnist.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "dataset_test_util.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

bool installed() {
  return std::filesystem::exists(std::string(kFashionMnistDefaultRoot) +
                                 "/t10k-images-idx3-ubyte.gz");
}

void write_gz(const std::string& path, const std::string& bytes, size_t keep) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  if (keep < bytes.size()) {  // truncate the compressed file
    std::filesystem::resize_file(path, std::min<uintmax_t>(keep, std::filesystem::file_size(path)));
  }
}

std::string idx_bytes(std::vector<int> dims, int fill_count, unsigned char type = 0x08) {
  std::string b = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (int d : dims) {
    for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((d >> s) & 0xff);
  }
  for (int i = 0; i < fill_count; ++i) b += static_cast<char>(i % 251);
  return b;
}

TEST(FashionMnist, ReadsDebianTestSplit) {
  if (!installed())
    GTEST_SKIP() << "dataset-fashion-mnist not installed (" << kFashionMnistDefaultRoot << ")";
  FashionMnistDataset ds(FashionMnistParams{});
  ASSERT_EQ(ds.size(), 10000);
  const ImageItem it = ds.get(0);
  EXPECT_EQ(it.image.sizes(), (at::IntArrayRef{3, 32, 32}));
  EXPECT_EQ(it.label, 9);  // test image 0 is an ankle boot
  EXPECT_EQ(it.id, "test_00000");
  EXPECT_GE(it.image.min().item<float>(), -1.f);
  EXPECT_LE(it.image.max().item<float>(), 1.f);
  // Padding rows/columns are background.
  EXPECT_TRUE(at::all(it.image.slice(1, 0, 2).eq(-1)).item<bool>());
  EXPECT_TRUE(at::all(it.image.slice(2, 30, 32).eq(-1)).item<bool>());
  EXPECT_TRUE(at::equal(it.image[0], it.image[2]));
  // Labels cover all ten classes.
  std::set<int64_t> labels;
  for (int64_t i = 0; i < 50; ++i) labels.insert(ds.get(i).label);
  EXPECT_EQ(labels.size(), 10u);
}

TEST(FashionMnist, TestImageZeroIsTheFixtureImage) {
  if (!installed()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string path = std::string(COPAINT_TEST_FIXTURES_DIR) + "/copaint/copaint_g2_n1.pt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture absent: " << path;
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const at::Tensor ref = torch::jit::pickle_load(bytes).toGenericDict().at("image").toTensor();
  const at::Tensor ours = FashionMnistDataset(FashionMnistParams{}).get(0).image.unsqueeze(0);
  ASSERT_EQ(ours.sizes(), ref.sizes());
  EXPECT_TRUE(at::equal(ours, ref.to(at::kFloat))) << (ours - ref).abs().max().item<float>();
}

TEST(FashionMnist, SlicesSizesChannelsAndRegistry) {
  if (!installed()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  FashionMnistParams p;
  p.start = 5;
  p.count = 3;
  p.channels = 1;
  p.size = 28;
  FashionMnistDataset ds(p);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.get(0).id, "test_00005");
  EXPECT_EQ(ds.get(0).image.sizes(), (at::IntArrayRef{1, 28, 28}));
  FashionMnistParams full;
  EXPECT_TRUE(at::equal(FashionMnistDataset(full).get(5).image[0].slice(0, 2, 30).slice(1, 2, 30),
                        ds.get(0).image[0]));
  p.size = 16;
  EXPECT_EQ(FashionMnistDataset(p).get(1).image.sizes(), (at::IntArrayRef{1, 16, 16}));
  p.count = 20000;
  EXPECT_THROW(FashionMnistDataset{p}, InputError);
  p.count = 1;
  p.split = "validation";
  EXPECT_THROW(FashionMnistDataset{p}, UsageError);
  register_builtin_datasets();
  auto reg = Registry<Dataset>::global().create("fashion_mnist",
                                                Options{{"split", "train"}, {"count", "2"}});
  EXPECT_EQ(reg->size(), 2);
  EXPECT_EQ(reg->get(1).id, "train_00001");
}

TEST(FashionMnist, IdxErrors) {
  testing::TempDir dir("idx");
  const std::string good = idx_bytes({2, 3}, 6);
  write_gz(dir / "good.gz", good, good.size() + 100);
  const at::Tensor t = read_idx_file(dir / "good.gz");
  EXPECT_EQ(t.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(t[1][2].item<int>(), 5);
  {
    std::ofstream raw(dir / "raw", std::ios::binary);
    raw << good;
  }
  EXPECT_TRUE(at::equal(read_idx_file(dir / "raw"), t));  // uncompressed files pass through
  write_gz(dir / "short.gz", idx_bytes({2, 3}, 5), 1000);
  EXPECT_THROW(read_idx_file(dir / "short.gz"), InputError);
  write_gz(dir / "float.gz", idx_bytes({2}, 8, 0x0D), 1000);
  EXPECT_THROW(read_idx_file(dir / "float.gz"), InputError);
  const std::string big = idx_bytes({100, 100}, 10000);
  write_gz(dir / "cut.gz", big, 40);
  EXPECT_THROW(read_idx_file(dir / "cut.gz"), InputError);
  EXPECT_THROW(read_idx_file(dir / "absent.gz"), InputError);
  FashionMnistParams p;
  p.root = dir / "nothing_here";
  EXPECT_THROW(FashionMnistDataset{p}, InputError);
}

}  // namespace
}  // namespace copaint
