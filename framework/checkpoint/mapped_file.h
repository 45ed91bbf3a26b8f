// Read-only memory map of a whole regular file, for the checkpoint readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace copaint {

/// Maps `path` read-only; throws InputError naming the file when it cannot be opened, is not a
/// regular file, or cannot be mapped. An empty file maps to data() == nullptr, size() == 0.
/// The file must not be truncated by another process while mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_{nullptr};
  size_t size_{0};
};

}  // namespace copaint
