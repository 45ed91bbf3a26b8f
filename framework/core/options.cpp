// Dotted-key settings: parsing, typed access, merging, canonical text and hashing.
#include "framework/core/options.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "framework/core/error.h"

namespace copaint {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (*begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

}  // namespace

Options::Options(std::initializer_list<std::pair<const std::string, std::string>> values)
    : values_(values) {}

void Options::set(const std::string& key, const std::string& value) {
  const std::string k = trim(key);
  if (k.empty()) throw UsageError("empty option key (value '" + value + "')");
  values_[k] = trim(value);
}

void Options::set_assignment(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || trim(assignment.substr(0, eq)).empty()) {
    throw UsageError("expected key=value, got '" + assignment + "'");
  }
  set(assignment.substr(0, eq), assignment.substr(eq + 1));
}

bool Options::has(const std::string& key) const { return values_.count(key) > 0; }

void Options::erase(const std::string& key) { values_.erase(key); }

const std::string& Options::get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw UsageError("missing option '" + key + "'");
  return it->second;
}

std::string Options::get(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

int64_t Options::get_int(const std::string& key) const {
  const std::string& v = get(key);
  int64_t out = 0;
  const char* begin = v.data();
  if (!v.empty() && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) {
    throw UsageError("option '" + key + "' must be an integer, got '" + v + "'");
  }
  return out;
}

double Options::get_double(const std::string& key) const {
  const std::string& v = get(key);
  double out = 0;
  if (!parse_double(v, &out)) {
    throw UsageError("option '" + key + "' must be a number, got '" + v + "'");
  }
  return out;
}

bool Options::get_bool(const std::string& key) const {
  const std::string v = lower(get(key));
  if (v == "true" || v == "yes" || v == "on" || v == "1") return true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return false;
  throw UsageError("option '" + key + "' must be true or false, got '" + get(key) + "'");
}

std::vector<std::string> Options::get_list(const std::string& key) const {
  return split_list(get(key));
}

void Options::merge(const Options& other) {
  for (const auto& [k, v] : other.values_) values_[k] = v;
}

Options Options::scope(const std::string& prefix) const {
  Options out;
  const std::string p = prefix + ".";
  for (const auto& [k, v] : values_) {
    if (k.size() > p.size() && k.compare(0, p.size(), p) == 0) out.values_[k.substr(p.size())] = v;
  }
  return out;
}

Options Options::prefixed(const std::string& prefix) const {
  Options out;
  for (const auto& [k, v] : values_) out.values_[prefix + "." + k] = v;
  return out;
}

std::string Options::canonical() const {
  std::ostringstream os;
  for (const auto& [k, v] : values_) os << k << " = " << canonical_value(v) << "\n";
  return os.str();
}

std::string Options::hash() const { return fnv1a_hex(canonical()); }

Options parse_assignments(const std::vector<std::string>& assignments) {
  Options out;
  for (const auto& a : assignments) out.set_assignment(a);
  return out;
}

std::string canonical_value(const std::string& value) {
  const std::string v = trim(value);
  if (v.find(',') != std::string::npos) {
    std::string out;
    for (const auto& item : split_list(v)) out += (out.empty() ? "" : ",") + canonical_value(item);
    return out;
  }
  const std::string l = lower(v);
  if (l == "true" || l == "false") return l;
  double d = 0;
  if (parse_double(v, &d)) {
    if (d == 0) return "0";  // folds -0
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), d);
    if (ec == std::errc()) {
      std::string s(buf, ptr);
      // Prefer plain notation for moderate exponents so 1e-4 and 0.0001 print the same way.
      if (s.find('e') != std::string::npos && std::fabs(d) >= 1e-6 && std::fabs(d) < 1e15) {
        auto [p2, ec2] = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::fixed);
        if (ec2 == std::errc()) s.assign(buf, p2);
      }
      return s;
    }
  }
  return v;
}

std::string number_text(double value) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  if (ec != std::errc()) throw UsageError("number_text: cannot print a number");
  return canonical_value(std::string(buf, ptr));
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream is(text);
  while (std::getline(is, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string fnv1a_hex(const std::string& text) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace copaint
