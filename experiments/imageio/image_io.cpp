// Image and mask files through OpenCV's imgcodecs, resizing through imgproc.
#include "experiments/imageio/image_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

uint32_t be(const unsigned char* p, int n) {
  uint32_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

/// The width x height that a PNG, JPEG or BMP file's header declares (read before decoding: a
/// small file may declare a huge image); {0, 0} for other formats or a header not understood.
std::pair<int64_t, int64_t> declared_size(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<unsigned char> b(64 * 1024);
  f.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.size()));
  b.resize(static_cast<size_t>(f.gcount()));
  if (b.size() >= 24 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G')
    return {be(&b[16], 4), be(&b[20], 4)};
  if (b.size() >= 26 && b[0] == 'B' && b[1] == 'M') {
    const auto le = [&](size_t at) {
      return static_cast<int32_t>(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) |
                                  (static_cast<uint32_t>(b[at + 3]) << 24));
    };
    return {std::abs(static_cast<int64_t>(le(18))), std::abs(static_cast<int64_t>(le(22)))};
  }
  if (b.size() < 4 || b[0] != 0xFF || b[1] != 0xD8) return {0, 0};
  for (size_t i = 2; i + 9 < b.size();) {  // JPEG segments up to a start of frame (SOFn)
    if (b[i] != 0xFF) return {0, 0};
    const unsigned char m = b[i + 1];
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
      return {be(&b[i + 7], 2), be(&b[i + 5], 2)};
    i += 2 + be(&b[i + 2], 2);
  }
  return {0, 0};
}

/// cv::imread with the codec libraries' messages (libpng and libjpeg print warnings straight to
/// stderr) captured into `said`, as one line, instead of reaching the user unasked.
cv::Mat imread_quietly(const std::string& path, int flag, std::string* said) {
  std::FILE* capture = std::tmpfile();
  const int saved = capture ? ::dup(STDERR_FILENO) : -1;
  if (saved < 0) return cv::imread(path, flag);
  std::fflush(stderr);
  ::dup2(::fileno(capture), STDERR_FILENO);
  cv::Mat m;
  try {
    m = cv::imread(path, flag);
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::fclose(capture);
    throw;
  }
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::rewind(capture);
  char buf[512];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, capture)) > 0 && said->size() < 2000;)
    said->append(buf, n);
  std::fclose(capture);
  std::replace(said->begin(), said->end(), '\n', ' ');
  while (!said->empty() && said->back() == ' ') said->pop_back();
  return m;
}

/// Decodes `path` with the given imread flag; InputError naming the file on any failure.
cv::Mat decode(const std::string& path, int flag, const char* what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw InputError(std::string("cannot read ") + what + " '" + path + "': no such file");
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError(std::string("cannot read ") + what + " '" + path + "': not a regular file");
  }
  const auto [w, h] = declared_size(path);
  if (w * h > kMaxImagePixelsWithoutAllowLarge && !allow_large_values()) {
    throw InputError(std::string("cannot read ") + what + " '" + path + "': it declares " +
                     std::to_string(w) + "x" + std::to_string(h) + " pixels, above " +
                     std::to_string(kMaxImagePixelsWithoutAllowLarge) +
                     " (a bound against damaged or hostile files); pass --allow-large to read it");
  }
  cv::Mat m;
  std::string codec;  // what libpng / libjpeg printed (captured, never leaked onto stderr)
  try {
    m = imread_quietly(path, flag, &codec);
  } catch (const cv::Exception& e) {
    throw InputError(std::string("cannot read ") + what + " '" + path + "': " + e.what());
  }
  if (m.empty()) {
    throw InputError(std::string("cannot read ") + what + " '" + path +
                     "': not a decodable image (corrupt or unsupported format)" +
                     (codec.empty() ? std::string() : "; the decoder said: " + codec));
  }
  if (!codec.empty()) log_debug("image '" + path + "': the decoder said: " + codec);
  if (m.depth() != CV_8U) m.convertTo(m, CV_8U);
  return m;
}

/// 8-bit HxWxC Mat -> [C,H,W] uint8 tensor (RGB order when C == 3).
at::Tensor mat_to_tensor(cv::Mat m) {
  if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  if (!m.isContinuous()) m = m.clone();
  return at::from_blob(m.data, {m.rows, m.cols, m.channels()}, at::kByte)
      .permute({2, 0, 1})
      .clone(at::MemoryFormat::Contiguous);  // always copies out of the Mat's buffer
}

}  // namespace

at::Tensor resize_center_crop(const at::Tensor& image, int64_t size, bool nearest) {
  if (image.dim() != 3) throw UsageError("resize_center_crop: expected [C,H,W]");
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (size <= 0 || (h == size && w == size)) return image;
  if (c < 1 || c > 4) throw UsageError("resize_center_crop: 1 to 4 channels");
  const double scale = static_cast<double>(size) / static_cast<double>(std::min(h, w));
  const int nh = static_cast<int>(std::max<int64_t>(size, std::llround(h * scale)));
  const int nw = static_cast<int>(std::max<int64_t>(size, std::llround(w * scale)));
  at::Tensor hwc = image.detach().to(at::kCPU, at::kFloat).permute({1, 2, 0}).contiguous();
  cv::Mat src(static_cast<int>(h), static_cast<int>(w), CV_32FC(static_cast<int>(c)),
              hwc.data_ptr<float>());
  cv::Mat dst;
  const int interp = nearest ? cv::INTER_NEAREST : (scale < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  cv::resize(src, dst, cv::Size(nw, nh), 0, 0, interp);
  const int top = (nh - static_cast<int>(size)) / 2, left = (nw - static_cast<int>(size)) / 2;
  cv::Mat crop = dst(cv::Rect(left, top, static_cast<int>(size), static_cast<int>(size))).clone();
  at::Tensor out = at::from_blob(crop.data, {size, size, c}, at::kFloat)
                       .permute({2, 0, 1})
                       .clone(at::MemoryFormat::Contiguous);
  if (!nearest && interp == cv::INTER_CUBIC) {
    out = out.clamp(image.min().item<double>(), image.max().item<double>());
  }
  return out.to(image.device(), image.scalar_type());
}

at::Tensor read_image(const std::string& path, int64_t channels, int64_t size) {
  if (channels != 1 && channels != 3) {
    throw UsageError("read_image: channels must be 1 or 3, got " + std::to_string(channels));
  }
  const cv::Mat m = decode(path, channels == 3 ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE, "image");
  at::Tensor t = mat_to_tensor(m).to(at::kFloat).div_(127.5).sub_(1.0);
  return resize_center_crop(t, size, /*nearest=*/false);
}

at::Tensor read_mask(const std::string& path, int64_t size, bool invert, bool resize) {
  const cv::Mat m = decode(path, cv::IMREAD_GRAYSCALE, "mask");
  at::Tensor t = mat_to_tensor(m).to(at::kFloat);  // [1,H,W] 0..255
  if (size > 0 && (t.size(1) != size || t.size(2) != size)) {
    if (!resize) {
      throw InputError("mask '" + path + "' is " + size_str(t.size(1), t.size(2)) + ", expected " +
                       size_str(size, size) + " (use --mask-resize to resize it)");
    }
    t = resize_center_crop(t, size, /*nearest=*/true);
  }
  at::Tensor known = invert ? t.eq(0) : t.ne(0);
  return known.to(at::kFloat);
}

void write_image(const std::string& path, const at::Tensor& image) {
  if (!image.defined() || image.dim() != 3 || (image.size(0) != 1 && image.size(0) != 3)) {
    throw UsageError("write_image('" + path + "'): expected a [1 or 3, H, W] tensor");
  }
  const at::Tensor u8 = image_to_uint8(image);  // the bytes the input hashes are taken of
  const int h = static_cast<int>(u8.size(0)), w = static_cast<int>(u8.size(1));
  const int c = static_cast<int>(u8.size(2));
  cv::Mat m(h, w, CV_8UC(c), u8.data_ptr<uint8_t>());
  cv::Mat out;
  if (c == 3) {
    cv::cvtColor(m, out, cv::COLOR_RGB2BGR);
  } else {
    out = m;
  }
  write_image_file(path, out);
}

void write_image_file(const std::string& path, const cv::Mat& bgr) {
  // Encoded in memory, then written atomically (temporary file, fsync, rename): a kill or a full
  // disk never leaves a truncated or empty image under the final name.
  std::vector<uchar> bytes;
  bool ok = false;
  const std::string ext = std::filesystem::path(path).extension().string();
  try {
    ok = !ext.empty() && cv::imencode(ext, bgr, bytes);
  } catch (const cv::Exception& e) {
    throw InputError("cannot write image '" + path + "': " + e.what());
  }
  if (ext.empty()) {
    throw InputError("cannot write image '" + path +
                     "': its name needs an image extension (.png, .jpg, .bmp)");
  }
  if (!ok) throw InputError("cannot write image '" + path + "': cannot encode as '" + ext + "'");
  write_file_atomic(path, bytes.data(), bytes.size());
}

void write_mask(const std::string& path, const at::Tensor& mask) {
  if (!mask.defined() || mask.dim() != 3 || mask.size(0) != 1) {
    throw UsageError("write_mask('" + path + "'): expected a [1,H,W] tensor");
  }
  write_image(path, mask.detach().to(at::kFloat).gt(0.5).to(at::kFloat).mul(2).sub(1));
}

}  // namespace copaint
