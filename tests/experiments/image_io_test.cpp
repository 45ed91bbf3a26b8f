// Tests of image and mask file I/O: PNG round trips, RGB order, fitting, and errors naming files.
#include "experiments/imageio/image_io.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>

#include "framework/core/error.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_image_io_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

TEST(ImageIo, PngRoundTripRgbAndGray) {
  const auto dir = temp_dir("roundtrip");
  at::manual_seed(3);
  const at::Tensor rgb = at::rand({3, 17, 23}) * 2 - 1;
  const std::string p = (dir / "rgb.png").string();
  write_image(p, rgb);
  const at::Tensor back = read_image(p, 3);
  ASSERT_EQ(back.sizes(), rgb.sizes());
  EXPECT_LE(max_abs(back, rgb), 0.5 / 127.5 + 1e-6);  // 8-bit quantisation only
  // Quantised values survive a second round trip exactly.
  write_image(p, back);
  EXPECT_EQ(max_abs(read_image(p, 3), back), 0.0);

  const at::Tensor gray = at::rand({1, 9, 12}) * 2 - 1;
  const std::string g = (dir / "gray.png").string();
  write_image(g, gray);
  const at::Tensor gback = read_image(g, 1);
  ASSERT_EQ(gback.sizes(), gray.sizes());
  EXPECT_LE(max_abs(gback, gray), 0.5 / 127.5 + 1e-6);
  // Read as RGB, a gray file gives three equal channels.
  const at::Tensor g3 = read_image(g, 3);
  ASSERT_EQ(g3.size(0), 3);
  EXPECT_EQ(max_abs(g3[0], gback[0]), 0.0);
  EXPECT_EQ(max_abs(g3[2], gback[0]), 0.0);
  fs::remove_all(dir);
}

TEST(ImageIo, ChannelsAreRgbOnDisk) {
  const auto dir = temp_dir("rgb");
  at::Tensor red = at::full({3, 4, 4}, -1.0);
  red[0].fill_(1.0);
  const std::string p = (dir / "red.png").string();
  write_image(p, red);
  const cv::Mat m = cv::imread(p, cv::IMREAD_COLOR);  // OpenCV is BGR
  ASSERT_FALSE(m.empty());
  const auto px = m.at<cv::Vec3b>(1, 2);
  EXPECT_EQ(px[2], 255);
  EXPECT_EQ(px[0], 0);
  EXPECT_EQ(read_image(p, 3)[0].min().item<double>(), 1.0);
  fs::remove_all(dir);
}

TEST(ImageIo, FitsShorterSideThenCropsCentre) {
  // Rows numbered 0..39, 40x20 -> shorter side 20 -> 10: 20x10 after resizing, rows 5..14 kept.
  at::Tensor img = at::arange(40, at::kFloat).view({1, 40, 1}).expand({1, 40, 20}).contiguous();
  const at::Tensor out = resize_center_crop(img, 10, /*nearest=*/true);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 10, 10}));
  // Nearest neighbour from 40 rows to 20: row r of the resized image is source row 2r.
  for (int64_t r = 0; r < 10; ++r) {
    EXPECT_EQ(out[0][r][0].item<float>(), 2.0f * static_cast<float>(r + 5)) << r;
  }
  // A constant image stays constant under area and cubic interpolation.
  const at::Tensor c = at::full({3, 30, 45}, 0.25);
  EXPECT_LE(max_abs(resize_center_crop(c, 16), at::full({3, 16, 16}, 0.25)), 1e-6);
  EXPECT_LE(max_abs(resize_center_crop(c, 64), at::full({3, 64, 64}, 0.25)), 1e-6);
  EXPECT_TRUE(resize_center_crop(c.narrow(2, 0, 30), 30).equal(c.narrow(2, 0, 30)));
}

TEST(ImageIo, MissingAndCorruptFilesNameTheFile) {
  const auto dir = temp_dir("corrupt");
  const std::string missing = (dir / "nope.png").string();
  try {
    read_image(missing, 3);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos) << e.what();
  }
  const std::string junk = (dir / "junk.png").string();
  {
    std::ofstream f(junk, std::ios::binary);
    f << "this is not an image at all, just text pretending to be one";
  }
  try {
    read_image(junk, 3);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(junk), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_mask(junk), InputError);
  // A PNG cut in half.
  const std::string cut = (dir / "cut.png").string();
  write_image(cut, at::rand({3, 64, 64}) * 2 - 1);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  EXPECT_THROW(read_image(cut, 3), InputError);
  // A directory is not an image.
  EXPECT_THROW(read_image(dir.string(), 3), InputError);
  // Writing into a missing folder.
  EXPECT_THROW(write_image((dir / "no" / "such" / "dir.png").string(), at::zeros({3, 4, 4})),
               InputError);
  EXPECT_THROW(write_image((dir / "bad.png").string(), at::zeros({2, 4, 4})), UsageError);
  fs::remove_all(dir);
}

TEST(ImageIo, MaskThresholdInvertAndSize) {
  const auto dir = temp_dir("mask");
  at::Tensor known = at::zeros({1, 16, 16});
  known.narrow(2, 0, 8).fill_(1);  // left half known
  const std::string p = (dir / "mask.png").string();
  write_mask(p, known);
  EXPECT_TRUE(read_mask(p).equal(known));
  EXPECT_TRUE(read_mask(p, 16).equal(known));
  EXPECT_TRUE(read_mask(p, 0, /*invert=*/true).equal(1 - known));
  // Any non-zero gray level is known.
  cv::Mat faint(4, 4, CV_8UC1, cv::Scalar(1));
  faint.at<uint8_t>(0, 0) = 0;
  const std::string f = (dir / "faint.png").string();
  ASSERT_TRUE(cv::imwrite(f, faint));
  const at::Tensor fm = read_mask(f);
  EXPECT_EQ(fm.sum().item<double>(), 15.0);
  EXPECT_EQ(fm[0][0][0].item<float>(), 0.0f);
  // Wrong size: an error naming both sizes, unless resizing is asked for.
  try {
    read_mask(p, 32);
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("16x16"), std::string::npos) << what;
    EXPECT_NE(what.find("32x32"), std::string::npos) << what;
    EXPECT_NE(what.find(p), std::string::npos) << what;
  }
  const at::Tensor big = read_mask(p, 32, false, /*resize=*/true);
  ASSERT_EQ(big.sizes(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(big.narrow(2, 0, 16).min().item<float>(), 1.0f);
  EXPECT_EQ(big.narrow(2, 16, 16).max().item<float>(), 0.0f);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
