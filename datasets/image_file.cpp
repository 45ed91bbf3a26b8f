// The image decoder hook and the reference-ordered image listing.
#include "datasets/image_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "framework/core/error.h"

namespace copaint {
namespace {

std::mutex& reader_mutex() {
  static std::mutex m;
  return m;
}
ImageFileReader& reader_slot() {
  static ImageFileReader reader;
  return reader;
}

bool has_image_extension(const std::string& name) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "gif";
}

void collect(const std::filesystem::path& dir, std::vector<std::string>& out) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (has_image_extension(name) && !entry.is_directory(ec)) {
      out.push_back(entry.path().string());
    } else if (entry.is_directory(ec)) {
      collect(entry.path(), out);
    }
  }
  if (ec) throw InputError("cannot list image folder '" + dir.string() + "': " + ec.message());
}

}  // namespace

void set_image_file_reader(ImageFileReader reader) {
  std::lock_guard<std::mutex> lock(reader_mutex());
  reader_slot() = std::move(reader);
}

bool has_image_file_reader() {
  std::lock_guard<std::mutex> lock(reader_mutex());
  return static_cast<bool>(reader_slot());
}

at::Tensor read_image_file(const std::string& path, int64_t channels) {
  if (channels != 1 && channels != 3) {
    throw UsageError("read_image_file: channels must be 1 or 3, got " + std::to_string(channels));
  }
  ImageFileReader reader;
  {
    std::lock_guard<std::mutex> lock(reader_mutex());
    reader = reader_slot();
  }
  if (!reader) {
    throw UsageError("cannot decode '" + path +
                     "': no image decoder in this program (image files need the copaint tool's "
                     "I/O layer, which installs one)");
  }
  at::Tensor img = reader(path, channels);
  if (!img.defined() || img.dim() != 3 || img.scalar_type() != at::kByte ||
      img.size(2) != channels || img.size(0) <= 0 || img.size(1) <= 0) {
    throw InputError("decoding '" + path + "' gave no uint8 [H,W," + std::to_string(channels) +
                     "] image");
  }
  return img.contiguous();
}

std::vector<std::string> list_image_files(const std::string& root) {
  std::error_code ec;
  if (!std::filesystem::exists(root, ec))
    throw InputError("image folder '" + root + "' does not exist");
  if (!std::filesystem::is_directory(root, ec)) {
    throw InputError("image folder '" + root + "' is not a directory");
  }
  std::vector<std::string> out;
  collect(root, out);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace copaint
