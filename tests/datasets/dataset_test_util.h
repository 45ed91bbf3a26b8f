// Helpers of the datasets tests: fixture paths, a temporary folder, and an image "decoder" that
// reads uint8 .npy arrays (whatever their extension), so the file-backed datasets and masks are
// tested without an image codec.
#pragma once

#include <ATen/ATen.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "datasets/image_file.h"
#include "datasets/npy.h"
#include "datasets/resample.h"
#include "framework/core/error.h"
#include "tests/test_paths.h"

namespace copaint::testing {

inline std::string fixture(const std::string& rel) {
  return std::string(COPAINT_TEST_FIXTURES_DIR) + "/datasets/" + rel;
}
inline std::string shared(const std::string& rel) {
  return std::string(COPAINT_SHARED_DIR) + "/" + rel;
}

inline at::Tensor load_u8(const std::string& path) { return read_npy(path).data; }

/// Reads uint8 [H,W] or [H,W,C] .npy files as images; grey <-> RGB as Pillow converts.
inline at::Tensor npy_image_reader(const std::string& path, int64_t channels) {
  at::Tensor t = read_npy(path).data;
  if (t.scalar_type() != at::kByte) throw InputError(path + ": not a uint8 image");
  if (t.dim() == 2) t = t.unsqueeze(2);
  if (t.dim() != 3) throw InputError(path + ": not an image");
  if (channels == 1 && t.size(2) != 1) t = pil_to_gray(t);
  if (channels == 3 && t.size(2) == 1) t = t.expand({-1, -1, 3}).contiguous();
  return t;
}

/// A fresh folder under the system temp dir, removed on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ =
        std::filesystem::temp_directory_path() /
        ("copaint_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

 private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path path_;
};

/// Writes a uint8 tensor as a .npy file (version 1.0, C order), for the fake reader.
inline void write_u8_npy(const std::string& path, const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  std::string shape = "(";
  for (int64_t d = 0; d < c.dim(); ++d)
    shape += std::to_string(c.size(d)) + (c.dim() == 1 || d + 1 < c.dim() ? ", " : "");
  shape += ")";
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(header.size() & 0xff),
                       static_cast<char>(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), c.numel());
}

}  // namespace copaint::testing
