// text / narrow / wide / file masks and their registry entries.
#include "datasets/mask_sets.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "datasets/image_file.h"
#include "datasets/mask.h"
#include "datasets/npy.h"
#include "datasets/resample.h"
#include "datasets/stroke_masks.h"
#include "datasets/text_mask.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

void check_size(int64_t h, int64_t w, const char* name) {
  if (h <= 0 || w <= 0) {
    throw UsageError(std::string(name) + " mask needs a positive size, got " + size_str(h, w));
  }
}

class TextMask : public MaskGenerator {
 public:
  explicit TextMask(const std::string& path) : path_(path) {
    if (!path_.empty()) {
      const NpyArray arr = read_npy(path_);
      if (arr.data.dim() != 2 ||
          (arr.data.scalar_type() != at::kByte && arr.data.scalar_type() != at::kBool)) {
        throw InputError(path_ +
                         ": text mask bitmap must be a 2-d uint8 or bool array, got dtype " +
                         arr.descr + " with " + std::to_string(arr.data.dim()) + " dimensions");
      }
      bitmap_ = arr.data.to(at::kByte);
    }
  }
  at::Tensor make(int64_t h, int64_t w, int64_t, uint64_t) const override {
    check_size(h, w, "text");
    return bitmap_.defined() ? text_mask_from_bitmap(bitmap_, h, w) : rendered_text_mask(h, w);
  }
  std::string describe() const override {
    return bitmap_.defined() ? "reference bitmap " + path_ : "rendered lorem ipsum (built-in font)";
  }

 private:
  std::string path_;
  at::Tensor bitmap_;
};

// narrow / wide: RePaint's PNG set when `dir` is given, else the stroke generator.
class FreeFormMask : public MaskGenerator {
 public:
  FreeFormMask(const std::string& name, const std::string& dir, StrokeMaskParams params)
      : name_(name), dir_(dir), params_(params) {
    if (!dir_.empty()) {
      files_ = list_image_files(dir_);
      if (files_.empty()) throw InputError(name_ + " mask folder '" + dir_ + "' holds no image");
    }
  }
  at::Tensor make(int64_t h, int64_t w, int64_t index, uint64_t seed) const override {
    check_size(h, w, name_.c_str());
    if (files_.empty()) return stroke_mask(h, w, index, seed, params_);
    if (index < 0 || index >= static_cast<int64_t>(files_.size())) {
      throw InputError(name_ + " mask folder '" + dir_ + "' holds " +
                       std::to_string(files_.size()) + " masks; image index " +
                       std::to_string(index) + " has none");
    }
    return load_repaint_mask(files_[index], h, w);
  }
  std::string describe() const override {
    return files_.empty() ? "LaMa-style stroke generator (our stand-in)"
                          : "RePaint mask folder " + dir_;
  }

 private:
  std::string name_, dir_;
  StrokeMaskParams params_;
  std::vector<std::string> files_;
};

class FileMask : public MaskGenerator {
 public:
  FileMask(const std::string& path, bool invert, bool resize)
      : path_(path), invert_(invert), resize_(resize) {
    if (path_.empty()) throw UsageError("file mask needs file.path (a PNG, or a folder of them)");
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) {
      files_ = list_image_files(path_);
      if (files_.empty()) throw InputError("mask folder '" + path_ + "' holds no image");
    } else if (!std::filesystem::exists(path_, ec)) {
      throw InputError("mask file '" + path_ + "' does not exist");
    }
  }
  at::Tensor make(int64_t h, int64_t w, int64_t index, uint64_t) const override {
    check_size(h, w, "file");
    if (files_.empty()) return load_user_mask(path_, h, w, invert_, resize_);
    if (index < 0 || index >= static_cast<int64_t>(files_.size())) {
      throw InputError("mask folder '" + path_ + "' holds " + std::to_string(files_.size()) +
                       " masks; image index " + std::to_string(index) + " has none");
    }
    return load_user_mask(files_[index], h, w, invert_, resize_);
  }
  std::string describe() const override {
    return (files_.empty() ? "mask file " : "mask folder ") + path_ +
           (invert_ ? " (inverted)" : "");
  }

 private:
  std::string path_;
  bool invert_, resize_;
  std::vector<std::string> files_;
};

}  // namespace

at::Tensor load_repaint_mask(const std::string& path, int64_t height, int64_t width) {
  at::Tensor g = read_image_file(path, 1);  // uint8 [H,W,1]
  if (g.size(0) != height || g.size(1) != width)
    g = pil_resize(g, height, width, PilFilter::kBicubic);
  return g.permute({2, 0, 1}).to(at::kFloat).div(255.0f).contiguous();
}

at::Tensor load_user_mask(const std::string& path, int64_t height, int64_t width, bool invert,
                          bool resize) {
  at::Tensor g = read_image_file(path, 1);
  if (g.size(0) != height || g.size(1) != width) {
    if (!resize) {
      throw InputError("mask '" + path + "' is " + size_str(g.size(0), g.size(1)) + ", expected " +
                       size_str(height, width) + " (set file.resize=true to resize it)");
    }
    g = pil_resize(g, height, width, PilFilter::kNearest);
  }
  at::Tensor known = invert ? g.eq(0) : g.ne(0);
  return known.permute({2, 0, 1}).to(at::kFloat).contiguous();
}

void register_file_masks() {
  auto& reg = Registry<MaskGenerator>::global();
  reg.add({"text",
           "lorem-ipsum text unknown (the reference's `text`: its lorem3.npy bitmap, cubic-resized "
           "for other sizes; without `path`, our own rendering)",
           {{"path", "", "the reference's datasets/text_masks/lorem3.npy; empty = rendered text"}},
           [](const Options& o) { return std::make_unique<TextMask>(o.get("path")); }});
  reg.add(
      {"narrow",
       "thin free-form strokes (the paper's `narrow`: RePaint's thin masks, i-th image gets the "
       "i-th; without `dir`, a LaMa random_thin_256-style generator)",
       {{"dir", "", "folder of RePaint's thin/ mask PNGs (white = known); empty = generator"}},
       [](const Options& o) {
         return std::make_unique<FreeFormMask>("narrow", o.get("dir"), thin_stroke_params());
       }});
  reg.add({"wide",
           "thick free-form strokes and boxes (the paper's `wide`: RePaint's thick masks; without "
           "`dir`, a LaMa random_thick_256-style generator)",
           {{"dir", "", "folder of RePaint's thick/ mask PNGs (white = known); empty = generator"}},
           [](const Options& o) {
             return std::make_unique<FreeFormMask>("wide", o.get("dir"), thick_stroke_params());
           }});
  reg.add(
      {"file",
       "the user's masks: one image for all images, or a folder (i-th image gets the i-th file "
       "in sorted order); non-zero = known",
       {{"path", "", "mask image, or folder of mask images"},
        {"invert", "false", "zero = known instead (masks drawn white = hole)"},
        {"resize", "false", "nearest-neighbour resize masks of another size instead of failing"}},
       [](const Options& o) {
         return std::make_unique<FileMask>(o.get("path"), o.get_bool("invert"),
                                           o.get_bool("resize"));
       }});
}

}  // namespace copaint
