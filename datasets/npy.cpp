// The .npy reader: magic and version, the header dict literal, dtype mapping and byte order.
#include "datasets/npy.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "framework/core/error.h"

namespace copaint {
namespace {

// A cursor over the header's Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_space();
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') fail("structured dtypes are not supported");
        descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected header key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_space();
      if (peek() != '}') fail("expected ',' or '}' in the header");
    }
    if (!have_descr || !have_fortran || !have_shape) {
      fail("header lacks one of 'descr', 'fortran_order', 'shape'");
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(name_ + ": bad .npy header (" + what + ")");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    expect('(');
    std::vector<int64_t> out;
    while (true) {
      skip_space();
      if (peek() == ')') {
        ++pos_;
        return out;
      }
      if (peek() < '0' || peek() > '9') fail("expected a dimension");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
        v = v * 10 + (s_[pos_++] - '0');
      }
      if (peek() == 'L') ++pos_;  // Python 2 longs
      out.push_back(v);
      skip_space();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        fail("expected ',' or ')' in the shape");
      }
    }
  }

  const std::string& s_;
  const std::string& name_;
  size_t pos_ = 0;
};

struct DtypeInfo {
  at::ScalarType stored;  // the type of the bytes on disk (after byte swapping)
  at::ScalarType result;  // the type handed out (wider for unsigned types torch lacks)
  int64_t itemsize;
  bool is_unsigned;
};

DtypeInfo dtype_info(const std::string& descr, const std::string& name, bool& swap) {
  if (descr.size() < 3) throw InputError(name + ": unsupported .npy dtype '" + descr + "'");
  const char order = descr[0];
  const std::string kind = descr.substr(1);
  static const bool little = [] {
    const uint16_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
  }();
  if (order == '<') {
    swap = !little;
  } else if (order == '>') {
    swap = little;
  } else if (order == '|' || order == '=') {
    swap = false;
  } else {
    throw InputError(name + ": unsupported .npy byte order in '" + descr + "'");
  }
  if (kind == "b1") return {at::kBool, at::kBool, 1, false};
  if (kind == "u1") return {at::kByte, at::kByte, 1, true};
  if (kind == "i1") return {at::kChar, at::kChar, 1, false};
  if (kind == "i2") return {at::kShort, at::kShort, 2, false};
  if (kind == "u2") return {at::kShort, at::kInt, 2, true};
  if (kind == "i4") return {at::kInt, at::kInt, 4, false};
  if (kind == "u4") return {at::kInt, at::kLong, 4, true};
  if (kind == "i8") return {at::kLong, at::kLong, 8, false};
  if (kind == "f2") return {at::kHalf, at::kHalf, 2, false};
  if (kind == "f4") return {at::kFloat, at::kFloat, 4, false};
  if (kind == "f8") return {at::kDouble, at::kDouble, 8, false};
  throw InputError(name + ": unsupported .npy dtype '" + descr + "'");
}

uint32_t read_le(const std::string& b, size_t pos, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  return v;
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) {
    throw InputError(name + ": not a .npy file (bad magic)");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_start = 0, header_len = 0;
  if (major == 1) {
    header_len = read_le(bytes, 8, 2);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw InputError(name + ": truncated .npy header");
    header_len = read_le(bytes, 8, 4);
    header_start = 12;
  } else {
    throw InputError(name + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > bytes.size() - header_start) throw InputError(name + ": truncated .npy header");

  NpyArray out;
  HeaderParser(bytes.substr(header_start, header_len), name)
      .parse(out.descr, out.fortran_order, out.shape);

  bool swap = false;
  const DtypeInfo info = dtype_info(out.descr, name, swap);
  int64_t count = 1;
  for (int64_t d : out.shape) {
    if (d != 0 && count > std::numeric_limits<int64_t>::max() / info.itemsize / d) {
      throw InputError(name + ": .npy shape too large");
    }
    count *= d;
  }
  const size_t data_start = header_start + header_len;
  const uint64_t need = static_cast<uint64_t>(count) * info.itemsize;
  const uint64_t have = bytes.size() - data_start;
  if (have != need) {
    std::ostringstream msg;
    msg << name << ": .npy data has " << have << " bytes, the header's shape and dtype need "
        << need;
    throw InputError(msg.str());
  }

  auto flat = at::empty({count}, at::TensorOptions().dtype(info.stored));
  if (count > 0) {
    auto* dst = static_cast<char*>(flat.data_ptr());
    std::memcpy(dst, bytes.data() + data_start, need);
    if (swap && info.itemsize > 1) {
      for (int64_t i = 0; i < count; ++i) {
        std::reverse(dst + i * info.itemsize, dst + (i + 1) * info.itemsize);
      }
    }
  }
  if (info.is_unsigned && info.stored != info.result) {
    // Reinterpret the signed storage as unsigned while widening.
    const int64_t modulus = int64_t{1} << (8 * info.itemsize);
    flat = flat.to(info.result);
    flat = at::where(flat < 0, flat + modulus, flat);
  }
  if (out.fortran_order) {
    std::vector<int64_t> reversed(out.shape.rbegin(), out.shape.rend());
    std::vector<int64_t> perm;
    for (int64_t i = static_cast<int64_t>(out.shape.size()) - 1; i >= 0; --i) perm.push_back(i);
    out.data = flat.reshape(reversed).permute(perm).contiguous();
  } else {
    out.data = flat.reshape(out.shape);
  }
  return out;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open .npy file");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_npy(buf.str(), path);
}

}  // namespace copaint
