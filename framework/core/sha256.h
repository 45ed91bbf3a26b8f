// SHA-256 (FIPS 180-4), self-contained: the one implementation behind the input hashes and
// fingerprints of stored results (datasets/input_hash.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace copaint {

/// Incremental SHA-256: update() any number of times, then hex() once.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(const std::string& text) { update(text.data(), text.size()); }
  /// The digest as 64 lowercase hex digits; the object is finished after it.
  std::string hex();

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t used_ = 0;     ///< bytes in buf_
  uint64_t total_ = 0;  ///< bytes hashed
};

/// SHA-256 of `size` bytes as 64 lowercase hex digits.
std::string sha256_hex(const void* data, size_t size);
/// SHA-256 of a string's bytes.
std::string sha256_hex(const std::string& text);

}  // namespace copaint
