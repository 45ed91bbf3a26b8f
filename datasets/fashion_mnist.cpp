// Fashion-MNIST from gzipped IDX files (zlib's gz* reader also passes uncompressed files through).
#include "datasets/fashion_mnist.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "datasets/resample.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

std::vector<unsigned char> read_maybe_gzip(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError("IDX file '" + path + "' does not exist");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw InputError("cannot open IDX file '" + path + "'");
  std::vector<unsigned char> out;
  unsigned char buf[1 << 16];
  while (true) {
    const int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      const std::string msg = gzerror(f, &err);
      gzclose(f);
      throw InputError("IDX file '" + path + "' is corrupt (" + msg + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
    if (out.size() > (size_t{1} << 32)) {
      gzclose(f);
      throw InputError("IDX file '" + path + "' is implausibly large");
    }
  }
  // A truncated gzip stream reads without error to its end; gzerror/gzclose then report it.
  int err = Z_OK;
  gzerror(f, &err);
  const int close_rc = gzclose(f);
  if (err == Z_BUF_ERROR || close_rc == Z_BUF_ERROR)
    throw InputError("IDX file '" + path + "' is truncated");
  if ((err != Z_OK && err != Z_STREAM_END) || close_rc != Z_OK) {
    throw InputError("IDX file '" + path + "' is corrupt");
  }
  return out;
}

}  // namespace

at::Tensor read_idx_file(const std::string& path) {
  const std::vector<unsigned char> b = read_maybe_gzip(path);
  if (b.size() < 4 || b[0] != 0 || b[1] != 0)
    throw InputError("'" + path + "' is not an IDX file (bad magic)");
  if (b[2] != 0x08) {
    throw InputError("IDX file '" + path + "' holds data type 0x" + std::to_string(b[2]) +
                     "; only unsigned bytes (0x08) are supported");
  }
  const int ndim = b[3];
  if (ndim < 1 || ndim > 4)
    throw InputError("IDX file '" + path + "' has " + std::to_string(ndim) + " dimensions");
  if (b.size() < 4 + 4 * static_cast<size_t>(ndim))
    throw InputError("IDX file '" + path + "' is truncated");
  std::vector<int64_t> shape;
  uint64_t count = 1;
  for (int d = 0; d < ndim; ++d) {
    const unsigned char* p = &b[4 + 4 * d];
    const uint64_t v =
        (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    shape.push_back(static_cast<int64_t>(v));
    count *= v;
    if (count > (uint64_t{1} << 32))
      throw InputError("IDX file '" + path + "' has an implausible shape");
  }
  const size_t data_start = 4 + 4 * static_cast<size_t>(ndim);
  if (b.size() - data_start != count) {
    throw InputError("IDX file '" + path + "' has " + std::to_string(b.size() - data_start) +
                     " data bytes, its shape needs " + std::to_string(count));
  }
  auto t = at::empty(shape, at::kByte);
  if (count > 0) std::memcpy(t.data_ptr<uint8_t>(), b.data() + data_start, count);
  return t;
}

FashionMnistDataset::FashionMnistDataset(const FashionMnistParams& params) : params_(params) {
  if (params_.split != "test" && params_.split != "train") {
    throw UsageError("fashion_mnist split must be 'test' or 'train', got '" + params_.split + "'");
  }
  if (params_.size <= 0) throw UsageError("fashion_mnist size must be positive");
  if (params_.channels != 1 && params_.channels != 3)
    throw UsageError("fashion_mnist channels must be 1 or 3");
  if (params_.start < 0 || params_.count < -1) throw UsageError("fashion_mnist: bad start/count");
  const std::string prefix = params_.split == "test" ? "t10k" : "train";
  const auto root = std::filesystem::path(params_.root);
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    throw InputError("Fashion-MNIST folder '" + params_.root +
                     "' does not exist (install Debian's dataset-fashion-mnist, or set root)");
  }
  auto pick = [&](const std::string& base) {
    const auto gz = root / (base + ".gz");
    return std::filesystem::exists(gz, ec) ? gz.string() : (root / base).string();
  };
  const std::string img_path = pick(prefix + "-images-idx3-ubyte");
  const std::string lab_path = pick(prefix + "-labels-idx1-ubyte");
  at::Tensor images = read_idx_file(img_path);
  at::Tensor labels = read_idx_file(lab_path);
  if (images.dim() != 3 || images.size(1) != 28 || images.size(2) != 28) {
    throw InputError("'" + img_path + "' does not hold 28x28 images");
  }
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    throw InputError("'" + lab_path + "' does not hold one label per image of '" + img_path + "'");
  }
  const int64_t n = images.size(0);
  const int64_t end = params_.count < 0 ? n : params_.start + params_.count;
  if (params_.start >= n || end > n) {
    throw InputError("Fashion-MNIST " + params_.split + " holds " + std::to_string(n) +
                     " images; asked for [" + std::to_string(params_.start) + ", " +
                     std::to_string(end) + ")");
  }
  images_ = images.slice(0, params_.start, end);
  labels_ = labels.slice(0, params_.start, end);
}

ImageItem FashionMnistDataset::get(int64_t index) const {
  if (index < 0 || index >= size()) {
    throw UsageError("fashion_mnist: index " + std::to_string(index) + " out of range [0, " +
                     std::to_string(size()) + ")");
  }
  at::Tensor img = images_[index].unsqueeze(2).contiguous();  // uint8 [28,28,1]
  const int64_t s = params_.size;
  if (s < 28) {
    img = pil_resize(img, s, s, PilFilter::kBicubic);
  } else if (s > 28) {
    // Background is 0; pad (s-28)/2 before, the rest after.
    const int64_t before = (s - 28) / 2;
    auto padded = at::zeros({s, s, 1}, at::kByte);
    padded.slice(0, before, before + 28).slice(1, before, before + 28).copy_(img);
    img = padded;
  }
  at::Tensor x = img.permute({2, 0, 1}).to(at::kFloat).div(255.0f).mul(2.0f).sub(1.0f);
  if (params_.channels == 3) x = x.expand({3, -1, -1});
  ImageItem item;
  item.image = x.contiguous();
  item.label = labels_[index].item<int64_t>();
  char id[48];
  std::snprintf(id, sizeof(id), "%s_%05lld", params_.split.c_str(),
                static_cast<long long>(params_.start + index));
  item.id = id;
  return item;
}

}  // namespace copaint
