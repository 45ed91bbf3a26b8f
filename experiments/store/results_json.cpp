// Canonical settings text -> typed JSON (nlohmann::json).
#include "experiments/store/results_json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/core/options.h"

namespace copaint {
namespace {

using nlohmann::json;

bool numeric_chars(const std::string& v) {
  if (v.empty()) return false;
  bool digit = false;
  for (char c : v) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (!(c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E')) {
      return false;
    }
  }
  return digit;
}

json scalar(const std::string& v) {
  if (v == "true") return true;
  if (v == "false") return false;
  if (numeric_chars(v)) {
    const bool integral = v.find_first_of(".eE") == std::string::npos;
    errno = 0;
    char* end = nullptr;
    if (integral) {
      const long long i = std::strtoll(v.c_str(), &end, 10);
      if (errno == 0 && end && *end == '\0') return static_cast<int64_t>(i);
    } else {
      const double d = std::strtod(v.c_str(), &end);
      if (errno == 0 && end && *end == '\0' && std::isfinite(d)) return d;
    }
  }
  return v;
}

json typed(const std::string& raw) {
  const std::string v = canonical_value(raw);
  if (v.find(',') != std::string::npos) {
    json a = json::array();
    for (const auto& item : split_list(v)) a.push_back(scalar(item));
    return a;
  }
  return scalar(v);
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

std::string typed_json_value(const std::string& value) { return dump(typed(value)); }

std::string settings_text_to_json(const std::string& canonical_text, bool nested) {
  json out = json::object();
  std::istringstream in(canonical_text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    std::string key, value;
    if (eq != std::string::npos) {
      key = line.substr(0, eq);
      value = line.substr(eq + 3);
    } else {
      const auto e = line.find('=');
      if (e == std::string::npos) continue;
      key = trim(line.substr(0, e));
      value = trim(line.substr(e + 1));
    }
    if (key.empty()) continue;
    json v = typed(value);
    if (!nested || key.find('.') == std::string::npos) {
      if (out.contains(key) && out[key].is_object()) {
        out[key][""] = v;  // "a = 1" beside "a.b = 2": kept under the empty key
      } else {
        out[key] = v;
      }
      continue;
    }
    // Walk (creating) the objects of the dotted path; a clash keeps the key flat.
    json* at = &out;
    bool clash = false;
    std::vector<std::string> parts;
    for (size_t p = 0, q; p <= key.size(); p = q + 1) {
      q = key.find('.', p);
      if (q == std::string::npos) q = key.size();
      parts.push_back(key.substr(p, q - p));
    }
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      json& next = (*at)[parts[i]];
      if (next.is_null()) next = json::object();
      if (!next.is_object()) {
        clash = true;
        break;
      }
      at = &next;
    }
    if (clash || at->contains(parts.back())) {
      out[key] = v;
    } else {
      (*at)[parts.back()] = v;
    }
  }
  return dump(out);
}

std::string variant_label_to_json(const std::string& label) {
  json out = json::object();
  std::string rest = label;
  // Items are "k=v" joined by ", " (ExperimentCell::axes_label); axis values hold no comma.
  size_t p = 0;
  while (p < rest.size()) {
    size_t q = rest.find(", ", p);
    if (q == std::string::npos) q = rest.size();
    const std::string item = rest.substr(p, q - p);
    const auto eq = item.find('=');
    if (eq != std::string::npos) out[trim(item.substr(0, eq))] = typed(item.substr(eq + 1));
    p = q + 2;
  }
  return dump(out);
}

std::string json_string_array(const std::vector<std::string>& items) {
  json a = json::array();
  for (const auto& i : items) a.push_back(i);
  return dump(a);
}

}  // namespace copaint
