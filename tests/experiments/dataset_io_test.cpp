// The datasets library's file-backed parts through the real decoder: OpenCV parity of our cubic
// resize (the reference's text-mask resizing), RePaint's mask folders against our stroke
// generators' statistics, and a PNG folder read back exactly.
#include "experiments/imageio/dataset_io.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>

#include "datasets/dataset.h"
#include "datasets/image_file.h"
#include "datasets/mask.h"
#include "datasets/npy.h"
#include "datasets/resample.h"
#include "datasets/stroke_masks.h"
#include "experiments/imageio/image_io.h"
#include "framework/core/registry.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kShared = COPAINT_SHARED_DIR;

at::Tensor cv_cubic(const at::Tensor& u8, int64_t oh, int64_t ow) {
  at::Tensor c = u8.contiguous();
  cv::Mat src(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC1,
              c.data_ptr<uint8_t>());
  cv::Mat dst;
  cv::resize(src, dst, cv::Size(static_cast<int>(ow), static_cast<int>(oh)), 0, 0, cv::INTER_CUBIC);
  return at::from_blob(dst.data, {oh, ow}, at::kByte).clone();
}

int64_t differing(const at::Tensor& a, const at::Tensor& b) {
  return (a != b).sum().item<int64_t>();
}

TEST(DatasetIo, OpenCvCubicBitExact) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  for (auto [h, w, oh, ow] : std::vector<std::array<int64_t, 4>>{{37, 29, 80, 61},
                                                                 {64, 64, 128, 128},
                                                                 {64, 64, 23, 17},
                                                                 {50, 70, 50, 33},
                                                                 {16, 16, 16, 39}}) {
    const at::Tensor img = at::randint(0, 256, {h, w}, gen, at::kLong).to(at::kByte);
    EXPECT_EQ(differing(opencv_resize_cubic_u8(img, oh, ow), cv_cubic(img, oh, ow)), 0)
        << h << "x" << w << " -> " << oh << "x" << ow;
    // Binary (text-mask-like) input.
    const at::Tensor bin = img.gt(128).to(at::kByte);
    EXPECT_EQ(differing(opencv_resize_cubic_u8(bin, oh, ow), cv_cubic(bin, oh, ow)), 0);
  }
}

TEST(DatasetIo, TextMaskResizeMatchesOpenCv) {
  const std::string path = kShared + "/data/lorem3.npy";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "reference lorem bitmap absent: " << path;
  const at::Tensor bitmap = read_npy(path).data;
  register_builtin_masks();
  auto text = Registry<MaskGenerator>::global().create("text", Options{{"path", path}});
  for (int64_t s : {64, 128, 512}) {
    const at::Tensor ref = cv_cubic(bitmap, s, s).to(at::kFloat).unsqueeze(0);
    EXPECT_TRUE(at::equal(text->make(s, s, 0, 0), ref))
        << s << ": " << differing(text->make(s, s, 0, 0), ref);
  }
}

struct HoleStats {
  double mean = 0, std = 0;
};
HoleStats stats(const std::vector<double>& v) {
  HoleStats s;
  for (double x : v) s.mean += x / v.size();
  for (double x : v) s.std += (x - s.mean) * (x - s.mean) / v.size();
  s.std = std::sqrt(s.std);
  return s;
}

TEST(DatasetIo, RePaintMaskFoldersAndGeneratorStatistics) {
  const std::string root = kShared + "/data/repaint_masks";
  if (!std::filesystem::exists(root + "/thin")) GTEST_SKIP() << "RePaint masks absent: " << root;
  install_image_file_reader();
  register_builtin_masks();
  auto& reg = Registry<MaskGenerator>::global();
  for (auto [name, sub, params] : {std::tuple{"narrow", "thin", thin_stroke_params()},
                                   std::tuple{"wide", "thick", thick_stroke_params()}}) {
    auto gen = reg.create(name, Options{{"dir", root + "/" + sub}});
    std::vector<double> theirs, ours;
    for (int64_t i = 0; i < 100; ++i) {
      const at::Tensor m = gen->make(256, 256, i, 0);
      ASSERT_TRUE(at::equal(m, m.round())) << name << " " << i << ": RePaint masks are 0/255";
      theirs.push_back(1 - m.mean().item<double>());
      ours.push_back(1 - stroke_mask(256, 256, i, 0, params).mean().item<double>());
    }
    EXPECT_THROW(gen->make(256, 256, 100, 0), InputError);
    const HoleStats a = stats(theirs), b = stats(ours);
    std::printf("%s: RePaint %s hole mean %.4f std %.4f | our generator mean %.4f std %.4f\n", name,
                sub, a.mean, a.std, b.mean, b.std);
    EXPECT_NEAR(a.mean, b.mean, 0.05) << name;
    EXPECT_NEAR(a.std, b.std, 0.05) << name;
  }
}

TEST(DatasetIo, PngFolderReadsBackExactly) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("copaint_dsio_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  const at::Tensor u8 = at::randint(0, 256, {3, 12, 12}, gen, at::kLong).to(at::kByte);
  write_image((dir / "img0.png").string(), u8.to(at::kFloat).div(127.5).sub(1));
  install_image_file_reader();
  register_builtin_datasets();
  auto ds = Registry<Dataset>::global().create(
      "folder", Options{{"root", dir.string()}, {"size", "12"}, {"preprocess", "none"}});
  ASSERT_EQ(ds->size(), 1);
  const at::Tensor expect = u8.to(at::kFloat).div(255.0f).mul(2.0f).sub(1.0f);
  EXPECT_TRUE(at::equal(ds->get(0).image, expect));
  EXPECT_TRUE(at::equal(read_image_file((dir / "img0.png").string(), 3).permute({2, 0, 1}), u8));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace copaint
