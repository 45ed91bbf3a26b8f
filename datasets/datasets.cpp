// Registry entries of the built-in datasets: folder, celebahq, imagenet100 (image files, decoded
// through the installed image reader) and fashion_mnist (gzipped IDX files, no decoder needed).
#include "datasets/dataset.h"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "datasets/fashion_mnist.h"
#include "datasets/image_folder.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

std::string required_root(const Options& o, const char* name) {
  const std::string root = o.get("root");
  if (root.empty()) throw UsageError(std::string(name) + ".root is required (the image folder)");
  return root;
}

/// What the image-folder datasets share: the folder, which images (start, count), their side and
/// whether smaller ones may be upscaled.
ImageFolderParams folder_params(const Options& o, std::string root, FolderPreprocess preprocess) {
  ImageFolderParams p;
  p.root = std::move(root);
  p.start = o.get_int("start");
  p.count = o.get_int("count");
  p.size = o.get_int("size");
  p.preprocess = preprocess;
  p.allow_upscale = o.get_bool("allow_upscale");
  return p;
}

/// The `folder` dataset: any folder of images.
std::unique_ptr<Dataset> make_folder(const Options& o) {
  ImageFolderParams p =
      folder_params(o, required_root(o, "folder"), parse_folder_preprocess(o.get("preprocess")));
  p.channels = o.get_int("channels");
  return std::make_unique<ImageFolderDataset>(p);
}

/// The `celebahq` dataset: LaMa's CelebA-HQ test images, resized.
std::unique_ptr<Dataset> make_celebahq(const Options& o) {
  ImageFolderParams p =
      folder_params(o, celebahq_image_dir(required_root(o, "celebahq")), FolderPreprocess::kResize);
  p.id_of = celebahq_id;
  return std::make_unique<ImageFolderDataset>(p);
}

/// The `fashion_mnist` dataset: the bundled IDX files.
std::unique_ptr<Dataset> make_fashion_mnist(const Options& o) {
  FashionMnistParams p;
  p.root = o.get("root");
  p.split = o.get("split");
  p.start = o.get_int("start");
  p.count = o.get_int("count");
  p.size = o.get_int("size");
  p.channels = o.get_int("channels");
  return std::make_unique<FashionMnistDataset>(p);
}

std::unique_ptr<Dataset> make_imagenet100(const Options& o) {
  const ImageNet100Layout layout = imagenet100_layout(required_root(o, "imagenet100"));
  const std::string label_file = o.get("labels").empty() ? layout.label_file : o.get("labels");
  if (label_file.empty()) {
    throw InputError("imagenet100: no val_label.json in '" + o.get("root") +
                     "' or its parent (set labels)");
  }
  // The reference keys labels by the original "_val_" names and renames them to its "_test_" files.
  auto labels = std::make_shared<std::map<std::string, int64_t>>();
  for (const auto& [k, v] : read_label_json(label_file)) {
    std::string key = k;
    const auto pos = key.find("_val_");
    if (pos != std::string::npos) key.replace(pos, 5, "_test_");
    (*labels)[key] = v;
  }
  ImageFolderParams p = folder_params(o, layout.image_dir, FolderPreprocess::kCenterCrop);
  p.id_of = imagenet_id;
  p.label_of = [labels](const std::string& path) {
    return labels->at(std::filesystem::path(path).filename().string());
  };
  auto ds = std::make_unique<ImageFolderDataset>(p);
  for (const auto& f : ds->files()) {
    const std::string name = std::filesystem::path(f).filename().string();
    if (!labels->count(name))
      throw InputError("imagenet100: '" + label_file + "' has no label for " + name);
  }
  return ds;
}

}  // namespace

void register_builtin_datasets() {
  constexpr double kMaxSide = 4096;  // a sane bound on image sides; beyond it --allow-large
  auto& reg = Registry<Dataset>::global();
  reg.add(
      {"folder",
       "any folder of images (jpg/jpeg/png/gif, recursive), sorted by path as the reference does",
       {{"root", "", "the image folder"},
        OptionSpec{"start", "0", "first image (sorted order)"}.integer().at_least(0),
        OptionSpec{"count", "-1", "number of images, -1 = all"}.integer().at_least(-1),
        OptionSpec{"size", "256", "output side (the model's image size)"}
            .integer()
            .at_least(1)
            .confirm_above(kMaxSide),
        OptionSpec{"channels", "3", "3 = RGB, 1 = grey"}.one_of({"3", "1"}),
        OptionSpec{"preprocess", "resize",
                   "resize (Pillow bicubic to size x size, the reference's CelebA-HQ loader) | "
                   "center_crop (guided-diffusion's center_crop_arr, the ImageNet loader) | none"}
            .one_of({"resize", "center_crop", "none"}),
        {"allow_upscale", "false", "accept images smaller than size"}},
       make_folder});
  reg.add({"celebahq",
           "the paper's CelebA-HQ set: LaMa's visual_test_source_256 (as the reference's download "
           "script prepares it), sorted, first 100",
           {{"root", "", "the reference's datasets/lama-celeba (or its visual_test_source_256)"},
            OptionSpec{"start", "0", "first image"}.integer().at_least(0),
            OptionSpec{"count", "100", "number of images"}.integer().at_least(-1),
            OptionSpec{"size", "256", "output side"}.integer().at_least(1).confirm_above(kMaxSide),
            {"allow_upscale", "false", "accept images smaller than size"}},
           make_celebahq});
  reg.add({"imagenet100",
           "the paper's 100 ImageNet images (the reference's datasets/imagenet100) with class "
           "labels, center-cropped as guided-diffusion does",
           {{"root", "", "the reference's datasets/imagenet100 (images in test/, val_label.json)"},
            {"labels", "", "label file; empty = root/val_label.json or root/../val_label.json"},
            OptionSpec{"start", "0", "first image"}.integer().at_least(0),
            OptionSpec{"count", "100", "number of images"}.integer().at_least(-1),
            OptionSpec{"size", "256", "output side"}.integer().at_least(1).confirm_above(kMaxSide),
            {"allow_upscale", "false", "accept images smaller than size"}},
           make_imagenet100});
  reg.add({"fashion_mnist",
           "the bundled set: Fashion-MNIST from Debian's dataset-fashion-mnist, 28x28 grey padded "
           "to 32x32, replicated to RGB",
           {{"root", kFashionMnistDefaultRoot, "folder with the *-ubyte.gz files"},
            OptionSpec{"split", "test", "test (evaluation) | train (training the bundled model)"}
                .one_of({"test", "train"}),
            OptionSpec{"start", "0", "first image"}.integer().at_least(0),
            OptionSpec{"count", "-1", "number of images, -1 = all"}.integer().at_least(-1),
            OptionSpec{"size", "32", "output side: >= 28 pads with background, < 28 resizes"}
                .integer()
                .at_least(1)
                .confirm_above(kMaxSide),
            OptionSpec{"channels", "3", "3 = grey replicated to RGB, 1 = grey"}.one_of({"3", "1"})},
           make_fashion_mnist});
}

}  // namespace copaint
