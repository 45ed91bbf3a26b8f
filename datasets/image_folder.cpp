// Image-folder datasets: listing, slicing, preprocessing, ids and labels.
#include "datasets/image_folder.h"

#include <ATen/ATen.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "datasets/image_file.h"
#include "datasets/resample.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

std::string stem_of(const std::string& path) { return std::filesystem::path(path).stem().string(); }

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 18) return false;
  for (unsigned char c : s) {
    if (!std::isdigit(c)) return false;
  }
  return true;
}

std::string five_digits(int64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%05lld", static_cast<long long>(v));
  return buf;
}

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

}  // namespace

FolderPreprocess parse_folder_preprocess(const std::string& name) {
  if (name == "resize") return FolderPreprocess::kResize;
  if (name == "center_crop") return FolderPreprocess::kCenterCrop;
  if (name == "none") return FolderPreprocess::kNone;
  throw UsageError("unknown preprocess '" + name + "'; valid: resize, center_crop, none");
}

ImageFolderDataset::ImageFolderDataset(ImageFolderParams params) : params_(std::move(params)) {
  if (params_.size <= 0) throw UsageError("image folder: size must be positive");
  if (params_.channels != 1 && params_.channels != 3) {
    throw UsageError("image folder: channels must be 1 or 3");
  }
  if (params_.start < 0) throw UsageError("image folder: start must be >= 0");
  if (params_.count < -1) throw UsageError("image folder: count must be >= 0, or -1 for all");
  std::vector<std::string> all = list_image_files(params_.root);
  if (all.empty()) {
    throw InputError("image folder '" + params_.root + "' holds no jpg/jpeg/png/gif image");
  }
  const int64_t n = static_cast<int64_t>(all.size());
  if (params_.start >= n) {
    throw InputError("image folder '" + params_.root + "' holds " + std::to_string(n) +
                     " images; start " + std::to_string(params_.start) + " is past the end");
  }
  int64_t end = params_.count < 0 ? n : params_.start + params_.count;
  if (end > n) {
    throw InputError("image folder '" + params_.root + "' holds " + std::to_string(n) +
                     " images; " + std::to_string(params_.count) + " from " +
                     std::to_string(params_.start) + " asked for");
  }
  files_.assign(all.begin() + params_.start, all.begin() + end);
}

at::Tensor ImageFolderDataset::preprocess(const at::Tensor& hwc_u8, const ImageFolderParams& p,
                                          const std::string& name) {
  at::Tensor img = hwc_u8;
  const int64_t h = img.size(0), w = img.size(1);
  if (!p.allow_upscale && std::min(h, w) < p.size) {
    throw InputError("image '" + name + "' is " + size_str(h, w) +
                     ", smaller than the model size " + std::to_string(p.size) +
                     " (set allow_upscale to enlarge it)");
  }
  switch (p.preprocess) {
    case FolderPreprocess::kResize:
      img = pil_resize(img, p.size, p.size, PilFilter::kBicubic);
      break;
    case FolderPreprocess::kCenterCrop:
      img = center_crop_arr(img, p.size);
      break;
    case FolderPreprocess::kNone:
      if (h != p.size || w != p.size) {
        throw InputError("image '" + name + "' is " + size_str(h, w) + ", expected " +
                         size_str(p.size, p.size) + " (preprocess = none)");
      }
      break;
  }
  if (p.channels == 1 && img.size(2) != 1) img = pil_to_gray(img);
  if (p.channels == 3 && img.size(2) == 1) img = img.expand({-1, -1, 3});
  // The reference: np.float32(x) / 255.0, then torch x * 2.0 - 1.0, all in float32.
  return img.permute({2, 0, 1}).to(at::kFloat).div(255.0f).mul(2.0f).sub(1.0f).contiguous();
}

ImageItem ImageFolderDataset::get(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw UsageError("image folder: index " + std::to_string(index) + " out of range [0, " +
                     std::to_string(size()) + ")");
  }
  const std::string& path = files_[index];
  ImageItem item;
  // The reference converts every image to RGB before any resizing; grey output is taken after.
  const at::Tensor hwc = read_image_file(path, 3);
  item.image = preprocess(hwc, params_, path);
  item.id = params_.id_of ? params_.id_of(path) : stem_of(path);
  item.label = params_.label_of ? params_.label_of(path) : -1;
  return item;
}

std::string celebahq_id(const std::string& path) {
  const std::string stem = stem_of(path);
  return all_digits(stem) ? five_digits(std::stoll(stem)) : stem;
}

std::string imagenet_id(const std::string& path) {
  const std::string stem = stem_of(path);
  const auto us = stem.rfind('_');
  const std::string last = us == std::string::npos ? stem : stem.substr(us + 1);
  return all_digits(last) ? five_digits(std::stoll(last)) : stem;
}

std::map<std::string, int64_t> read_label_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open label file '" + path + "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string s = buf.str();
  size_t i = 0;
  auto fail = [&](const std::string& what) -> void {
    throw InputError("label file '" + path + "': " + what + " at byte " + std::to_string(i) +
                     " (expected a flat JSON object of \"name\": integer)");
  };
  auto skip = [&] {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  };
  std::map<std::string, int64_t> out;
  skip();
  if (i >= s.size() || s[i] != '{') fail("no '{'");
  ++i;
  skip();
  if (i < s.size() && s[i] == '}') return out;
  while (true) {
    skip();
    if (i >= s.size() || s[i] != '"') fail("expected a quoted key");
    std::string key;
    for (++i; i < s.size() && s[i] != '"'; ++i) {
      if (s[i] == '\\') {
        if (++i >= s.size()) break;
        if (s[i] != '"' && s[i] != '\\' && s[i] != '/') fail("unsupported escape in key");
      }
      key += s[i];
    }
    if (i >= s.size()) fail("unterminated key");
    ++i;
    skip();
    if (i >= s.size() || s[i] != ':') fail("expected ':'");
    ++i;
    skip();
    const bool neg = i < s.size() && s[i] == '-';
    if (neg) ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i])))
      fail("expected an integer");
    int64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("integer too large");
      v = v * 10 + (s[i++] - '0');
    }
    out[key] = neg ? -v : v;
    skip();
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') break;
    fail("expected ',' or '}'");
  }
  return out;
}

std::string celebahq_image_dir(const std::string& root) {
  const auto sub = std::filesystem::path(root) / "visual_test_source_256";
  std::error_code ec;
  return std::filesystem::is_directory(sub, ec) ? sub.string() : root;
}

ImageNet100Layout imagenet100_layout(const std::string& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  ImageNet100Layout l;
  const fs::path test = fs::path(root) / "test";
  l.image_dir = fs::is_directory(test, ec) ? test.string() : root;
  const fs::path here = fs::path(root) / "val_label.json";
  const fs::path above = fs::path(root) / ".." / "val_label.json";
  l.label_file = fs::exists(here, ec) ? here.string() : fs::exists(above, ec) ? above.string() : "";
  return l;
}

}  // namespace copaint
