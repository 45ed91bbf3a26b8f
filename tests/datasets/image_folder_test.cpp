// Image-folder datasets (folder, celebahq, imagenet100) and file-backed masks (narrow/wide from a
// folder, file), decoded by a test reader that reads uint8 .npy arrays whatever their extension.
#include "datasets/image_folder.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dataset_test_util.h"
#include "datasets/image_file.h"
#include "datasets/mask.h"
#include "datasets/mask_sets.h"
#include "datasets/resample.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

using testing::TempDir;
using testing::write_u8_npy;

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override { set_image_file_reader(testing::npy_image_reader); }
  void TearDown() override { set_image_file_reader(nullptr); }
  static at::Tensor image(int64_t h, int64_t w, int64_t seed, int64_t c = 3) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return at::randint(0, 256, {h, w, c}, gen, at::kLong).to(at::kByte);
  }
};

TEST_F(ImageFolderTest, ListsLikeTheReference) {
  TempDir d("list");
  std::filesystem::create_directories(d / "sub");
  for (const char* f : {"10.png", "9.png", "B.JPEG", "sub/1.jpg", "c.gif", "notes.txt", "noext"}) {
    write_u8_npy(d / f, image(4, 4, 0));
  }
  std::filesystem::create_directories(d /
                                      "dir.png");  // a folder with an image-like name is searched
  write_u8_npy(d / "dir.png/x.png", image(4, 4, 0));
  const auto files = list_image_files(d.str());
  const std::vector<std::string> expect = {d / "10.png", d / "9.png",         d / "B.JPEG",
                                           d / "c.gif",  d / "dir.png/x.png", d / "sub/1.jpg"};
  EXPECT_EQ(files, expect);
  EXPECT_THROW(list_image_files(d / "absent"), InputError);
  EXPECT_THROW(list_image_files(d / "notes.txt"), InputError);
}

TEST_F(ImageFolderTest, SlicesPreprocessesAndNamesItems) {
  TempDir d("folder");
  std::vector<at::Tensor> imgs;
  for (int i = 0; i < 5; ++i) {
    imgs.push_back(image(20 + i, 30, i));
    write_u8_npy(d / (std::to_string(i) + ".png"), imgs.back());
  }
  ImageFolderParams p;
  p.root = d.str();
  p.start = 1;
  p.count = 3;
  p.size = 16;
  ImageFolderDataset ds(p);
  ASSERT_EQ(ds.size(), 3);
  const ImageItem it = ds.get(0);
  EXPECT_EQ(it.id, "1");
  EXPECT_EQ(it.label, -1);
  const at::Tensor expect = pil_resize(imgs[1], 16, 16, PilFilter::kBicubic)
                                .permute({2, 0, 1})
                                .to(at::kFloat)
                                .div(255.0f)
                                .mul(2.0f)
                                .sub(1.0f);
  EXPECT_TRUE(at::equal(it.image, expect));
  p.preprocess = FolderPreprocess::kCenterCrop;
  EXPECT_TRUE(at::equal(ImageFolderDataset(p).get(2).image, center_crop_arr(imgs[3], 16)
                                                                .permute({2, 0, 1})
                                                                .to(at::kFloat)
                                                                .div(255.0f)
                                                                .mul(2.0f)
                                                                .sub(1.0f)));
  p.channels = 1;
  EXPECT_EQ(ImageFolderDataset(p).get(0).image.sizes(), (at::IntArrayRef{1, 16, 16}));
  EXPECT_THROW(ds.get(3), UsageError);
  p.count = 9;
  EXPECT_THROW(ImageFolderDataset{p}, InputError);
  p.count = -1;
  p.start = 5;
  EXPECT_THROW(ImageFolderDataset{p}, InputError);
}

TEST_F(ImageFolderTest, ClearErrors) {
  TempDir d("errors");
  ImageFolderParams p;
  p.root = d / "absent";
  EXPECT_THROW(ImageFolderDataset{p}, InputError);
  p.root = d.str();
  EXPECT_THROW(ImageFolderDataset{p}, InputError);  // empty
  write_u8_npy(d / "a.png", image(8, 8, 1));
  {
    std::ofstream bad(d / "b.png", std::ios::binary);
    bad << "this is not an image";
  }
  p.size = 16;
  ImageFolderDataset ds(p);
  try {
    ds.get(0);
    ADD_FAILURE() << "a too-small image must throw";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("a.png"), std::string::npos) << e.what();
  }
  try {
    ds.get(1);
    ADD_FAILURE() << "a corrupt image must throw";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("b.png"), std::string::npos) << e.what();
  }
  p.allow_upscale = true;
  EXPECT_EQ(ImageFolderDataset(p).get(0).image.sizes(), (at::IntArrayRef{3, 16, 16}));
  p.preprocess = FolderPreprocess::kNone;
  EXPECT_THROW(ImageFolderDataset(p).get(0), InputError);
  set_image_file_reader(nullptr);
  EXPECT_THROW(ImageFolderDataset(p).get(0), UsageError);
  EXPECT_THROW(parse_folder_preprocess("crop"), UsageError);
}

TEST_F(ImageFolderTest, CelebAHqLayoutAndIds) {
  TempDir d("celeba");
  std::filesystem::create_directories(d / "visual_test_source_256");
  for (const char* f : {"25531.jpg", "1003.jpg", "10012.jpg"}) {
    write_u8_npy(d / (std::string("visual_test_source_256/") + f), image(8, 8, 3));
  }
  write_u8_npy(d / "stray.jpg", image(8, 8, 3));  // outside the evaluation folder
  register_builtin_datasets();
  auto ds = Registry<Dataset>::global().create(
      "celebahq", Options{{"root", d.str()}, {"count", "3"}, {"size", "8"}});
  ASSERT_EQ(ds->size(), 3);
  // Sorted as strings, as the reference sorts paths: 10012 < 1003 < 25531.
  EXPECT_EQ(ds->get(0).id, "10012");
  EXPECT_EQ(ds->get(1).id, "01003");
  EXPECT_EQ(ds->get(2).id, "25531");
  EXPECT_THROW(Registry<Dataset>::global().create("celebahq", Options{{"root", d.str()}}),
               InputError);                                                  // 100
  EXPECT_THROW(Registry<Dataset>::global().create("celebahq"), UsageError);  // no root
  EXPECT_EQ(celebahq_id("/x/abc.png"), "abc");
}

TEST_F(ImageFolderTest, ImageNet100LabelsAndIds) {
  TempDir d("imagenet");
  std::filesystem::create_directories(d / "test");
  write_u8_npy(d / "test/ILSVRC2012_test_00000002.JPEG", image(12, 16, 4));
  write_u8_npy(d / "test/ILSVRC2012_test_00000017.JPEG", image(16, 12, 5));
  {
    std::ofstream j(d / "val_label.json");
    j << "{\"ILSVRC2012_val_00000002.JPEG\": 970, \"ILSVRC2012_val_00000017.JPEG\": 0,\n"
         " \"ILSVRC2012_val_00000099.JPEG\": 12}";
  }
  register_builtin_datasets();
  auto ds = Registry<Dataset>::global().create(
      "imagenet100", Options{{"root", d.str()}, {"count", "2"}, {"size", "8"}});
  ASSERT_EQ(ds->size(), 2);
  EXPECT_EQ(ds->get(0).id, "00002");
  EXPECT_EQ(ds->get(0).label, 970);
  EXPECT_EQ(ds->get(1).id, "00017");
  EXPECT_EQ(ds->get(1).label, 0);
  EXPECT_EQ(ds->get(1).image.sizes(), (at::IntArrayRef{3, 8, 8}));
  write_u8_npy(d / "test/ILSVRC2012_test_00000050.JPEG", image(8, 8, 6));
  EXPECT_THROW(
      Registry<Dataset>::global().create("imagenet100", Options{{"root", d.str()}, {"count", "3"}}),
      InputError);  // no label for 00000050
  {
    std::ofstream j(d / "bad.json");
    j << "{\"a\": \"x\"}";
  }
  EXPECT_THROW(read_label_json(d / "bad.json"), InputError);
  EXPECT_THROW(read_label_json(d / "absent.json"), InputError);
}

TEST_F(ImageFolderTest, RepaintMaskFolderAndFileMasks) {
  TempDir d("masks");
  std::vector<at::Tensor> masks;
  for (int i = 0; i < 3; ++i) {
    at::Tensor m = image(16, 16, 10 + i, 1).gt(100).to(at::kByte).mul(255);
    masks.push_back(m);
    write_u8_npy(d / ("00000" + std::to_string(i) + ".png"), m);
  }
  register_builtin_masks();
  auto& reg = Registry<MaskGenerator>::global();
  auto narrow = reg.create("narrow", Options{{"dir", d.str()}});
  EXPECT_NE(narrow->describe().find(d.str()), std::string::npos);
  EXPECT_TRUE(
      at::equal(narrow->make(16, 16, 2, 0), masks[2].permute({2, 0, 1}).to(at::kFloat).div(255.f)));
  EXPECT_THROW(narrow->make(16, 16, 3, 0), InputError);
  // Another size: Pillow bicubic, not thresholded (as the reference loads them).
  EXPECT_TRUE(at::equal(narrow->make(8, 8, 1, 0), pil_resize(masks[1], 8, 8, PilFilter::kBicubic)
                                                      .permute({2, 0, 1})
                                                      .to(at::kFloat)
                                                      .div(255.f)));
  EXPECT_THROW(reg.create("wide", Options{{"dir", d / "absent"}}), InputError);

  auto one = reg.create("file", Options{{"path", d / "000001.png"}});
  EXPECT_TRUE(at::equal(one->make(16, 16, 7, 0), masks[1].permute({2, 0, 1}).ne(0).to(at::kFloat)));
  auto inv = reg.create("file", Options{{"path", d / "000001.png"}, {"invert", "true"}});
  EXPECT_TRUE(at::equal(inv->make(16, 16, 0, 0), 1 - one->make(16, 16, 0, 0)));
  auto folder = reg.create("file", Options{{"path", d.str()}});
  EXPECT_TRUE(
      at::equal(folder->make(16, 16, 0, 0), masks[0].permute({2, 0, 1}).ne(0).to(at::kFloat)));
  EXPECT_THROW(one->make(8, 8, 0, 0), InputError);
  auto resized = reg.create("file", Options{{"path", d / "000001.png"}, {"resize", "true"}});
  EXPECT_TRUE(at::equal(
      resized->make(8, 8, 0, 0),
      pil_resize(masks[1], 8, 8, PilFilter::kNearest).permute({2, 0, 1}).ne(0).to(at::kFloat)));
  EXPECT_THROW(reg.create("file"), UsageError);
  EXPECT_THROW(reg.create("file", Options{{"path", d / "absent.png"}}), InputError);
}

}  // namespace
}  // namespace copaint
