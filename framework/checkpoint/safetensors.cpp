// .safetensors reading and writing (see framework/checkpoint/checkpoint.h), with the small
// bounds-checked JSON parser its header needs.
#include <ATen/ATen.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "framework/checkpoint/checkpoint.h"
#include "framework/checkpoint/mapped_file.h"
#include "framework/checkpoint/pickle.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

constexpr uint64_t kMaxHeader = uint64_t(100) << 20;  // as the reference implementation
constexpr int kMaxJsonDepth = 16;

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
const DtypeName kDtypes[] = {{"F64", at::kDouble},    {"F32", at::kFloat}, {"F16", at::kHalf},
                             {"BF16", at::kBFloat16}, {"I64", at::kLong},  {"I32", at::kInt},
                             {"I16", at::kShort},     {"I8", at::kChar},   {"U8", at::kByte},
                             {"BOOL", at::kBool}};

struct Json {
  enum Type { kNull, kBool, kNumber, kString, kArray, kObject } type{kNull};
  bool is_int{false};
  int64_t i{0};
  double d{0};
  std::string s;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;
};

class JsonParser {
 public:
  JsonParser(const char* data, size_t size, const std::string& path, size_t base)
      : p_(data), n_(size), path_(path), base_(base) {}

  Json parse() {
    Json v = value(0);
    skip_ws();
    if (i_ != n_) fail("trailing characters after the JSON header");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path_ + " byte " + std::to_string(base_ + i_) +
                     ": bad safetensors header: " + what);
  }
  void skip_ws() {
    while (i_ < n_ && (p_[i_] == ' ' || p_[i_] == '\t' || p_[i_] == '\n' || p_[i_] == '\r')) ++i_;
  }
  char peek() {
    skip_ws();
    if (i_ >= n_) fail("unexpected end");
    return p_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  bool literal(const char* word) {
    const size_t len = std::strlen(word);
    if (n_ - i_ >= len && std::memcmp(p_ + i_, word, len) == 0) {
      i_ += len;
      return true;
    }
    return false;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (n_ - i_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = p_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= n_) fail("unterminated string");
      const char c = p_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= n_) fail("unterminated string");
      const char e = p_[i_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && n_ - i_ >= 6 && p_[i_] == '\\' && p_[i_ + 1] == 'u') {
            i_ += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default:
          fail("bad escape");
      }
    }
  }
  Json number() {
    const size_t start = i_;
    if (i_ < n_ && p_[i_] == '-') ++i_;
    bool integral = true;
    while (i_ < n_ && ((p_[i_] >= '0' && p_[i_] <= '9') || p_[i_] == '.' || p_[i_] == 'e' ||
                       p_[i_] == 'E' || p_[i_] == '+' || p_[i_] == '-')) {
      if (!(p_[i_] >= '0' && p_[i_] <= '9')) integral = false;
      ++i_;
    }
    const std::string text(p_ + start, i_ - start);
    if (text.empty() || text == "-" || i_ - start > 64) fail("bad number");
    Json v;
    v.type = Json::kNumber;
    errno = 0;
    char* end = nullptr;
    if (integral) {
      const long long x = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0 && end == text.c_str() + text.size()) {
        v.is_int = true;
        v.i = x;
        v.d = static_cast<double>(x);
        return v;
      }
      errno = 0;
    }
    v.d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) fail("bad number");
    return v;
  }
  Json value(int depth) {
    if (depth > kMaxJsonDepth) fail("nested too deeply");
    Json v;
    const char c = peek();
    if (c == '{') {
      ++i_;
      v.type = Json::kObject;
      if (peek() == '}') {
        ++i_;
        return v;
      }
      while (true) {
        std::string key = string();
        expect(':');
        v.object.emplace_back(std::move(key), value(depth + 1));
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      ++i_;
      v.type = Json::kArray;
      if (peek() == ']') {
        ++i_;
        return v;
      }
      while (true) {
        v.array.push_back(value(depth + 1));
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = Json::kString;
      v.s = string();
      return v;
    }
    if (literal("true")) {
      v.type = Json::kBool;
      v.i = 1;
      return v;
    }
    if (literal("false")) {
      v.type = Json::kBool;
      return v;
    }
    if (literal("null")) return v;
    return number();
  }

  const char* p_;
  size_t n_;
  size_t i_{0};
  const std::string& path_;
  size_t base_;
};

const Json* member(const Json& object, const char* name) {
  for (const auto& [key, value] : object.object) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

StateDict read_safetensors(const std::string& path) {
  MappedFile f(path);
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  auto bad = [&](uint64_t pos, const std::string& what) {
    return InputError(path + " byte " + std::to_string(pos) + ": " + what);
  };
  if (n < 8) throw bad(0, "too short for a safetensors file");
  uint64_t header_size = 0;
  for (int k = 7; k >= 0; --k) header_size = (header_size << 8) | d[k];
  if (header_size > n - 8 || header_size > kMaxHeader) throw bad(0, "bad safetensors header size");
  const Json header =
      JsonParser(reinterpret_cast<const char*>(d + 8), header_size, path, 8).parse();
  if (header.type != Json::kObject) throw bad(8, "safetensors header must be a JSON object");
  const uint8_t* data = d + 8 + header_size;
  const uint64_t data_size = n - 8 - header_size;

  StateDict out;
  std::set<std::string> names;
  for (const auto& [name, info] : header.object) {
    if (name == "__metadata__") continue;
    auto fail = [&](const std::string& what) { return bad(8, "tensor '" + name + "': " + what); };
    if (!names.insert(name).second) throw fail("duplicate name");
    if (info.type != Json::kObject) throw fail("entry must be an object");
    const Json* dtype = member(info, "dtype");
    const Json* shape = member(info, "shape");
    const Json* offsets = member(info, "data_offsets");
    if (!dtype || dtype->type != Json::kString || !shape || shape->type != Json::kArray ||
        !offsets || offsets->type != Json::kArray || offsets->array.size() != 2) {
      throw fail("needs dtype, shape and data_offsets");
    }
    const DtypeName* dt = nullptr;
    for (const auto& candidate : kDtypes) {
      if (dtype->s == candidate.name) dt = &candidate;
    }
    if (!dt) throw fail("unsupported dtype '" + dtype->s.substr(0, 32) + "'");
    if (shape->array.size() > 64) throw fail("too many dimensions");
    std::vector<int64_t> sizes;
    int64_t numel = 1, nbytes = 0;
    for (const Json& s : shape->array) {
      if (s.type != Json::kNumber || !s.is_int || s.i < 0) throw fail("bad shape");
      if (pickle::mul_overflows(numel, s.i, &numel)) throw fail("shape overflows");
      sizes.push_back(s.i);
    }
    const auto elsize = static_cast<int64_t>(pickle::element_size(dt->dtype));
    if (pickle::mul_overflows(numel, elsize, &nbytes)) throw fail("shape overflows");
    const Json& b = offsets->array[0];
    const Json& e = offsets->array[1];
    if (b.type != Json::kNumber || !b.is_int || e.type != Json::kNumber || !e.is_int || b.i < 0 ||
        e.i < b.i || static_cast<uint64_t>(e.i) > data_size) {
      throw fail("data_offsets outside the data");
    }
    if (e.i - b.i != nbytes) throw fail("data_offsets do not match the shape and dtype");
    at::Tensor t = at::empty(sizes, at::TensorOptions().dtype(dt->dtype));
    if (nbytes > 0) std::memcpy(t.data_ptr(), data + b.i, static_cast<size_t>(nbytes));
    if (dt->dtype == at::kBool) {  // only 0 and 1 are valid bools
      auto* p = static_cast<uint8_t*>(t.data_ptr());
      for (int64_t k = 0; k < nbytes; ++k) p[k] = p[k] != 0;
    }
    out.emplace_back(name, std::move(t));
  }
  return out;
}

void write_safetensors(const std::string& path, const StateDict& tensors) {
  std::set<std::string> names;
  std::vector<at::Tensor> data;
  std::string header = "{";
  int64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second)
      throw UsageError("write_safetensors: duplicate name '" + name + "'");
    const char* dtype = nullptr;
    for (const auto& candidate : kDtypes) {
      if (tensor.scalar_type() == candidate.dtype) dtype = candidate.name;
    }
    if (!dtype) {
      throw UsageError("write_safetensors: tensor '" + name + "' has unsupported dtype " +
                       std::string(c10::toString(tensor.scalar_type())));
    }
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const int64_t nbytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (header.size() > 1) header += ",";
    header += json_escape(name) + ":{\"dtype\":\"" + dtype + "\",\"shape\":[";
    for (int64_t k = 0; k < t.dim(); ++k) header += (k ? "," : "") + std::to_string(t.size(k));
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
    data.push_back(std::move(t));
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path + ": cannot open for writing");
  uint8_t size_le[8];
  for (int k = 0; k < 8; ++k) size_le[k] = static_cast<uint8_t>(uint64_t(header.size()) >> (8 * k));
  out.write(reinterpret_cast<const char*>(size_le), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const at::Tensor& t : data) {
    out.write(static_cast<const char*>(t.data_ptr()),
              static_cast<std::streamsize>(t.numel() * t.element_size()));
  }
  out.close();
  if (!out) throw InputError(path + ": write failed");
}

}  // namespace copaint
