// Helpers of the registry mechanism: name lists and the declared value ranges of options.
#include "framework/core/registry.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace copaint {
namespace {

bool g_allow_large = false;

std::string bound_text(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return canonical_value(buf);
}

bool parse_integer(const std::string& s, int64_t* out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return !s.empty() && ec == std::errc() && ptr == end;
}

bool parse_number(const std::string& s, double* out) {
  const char* begin = s.data();
  const char* end = s.data() + s.size();
  if (begin != end && *begin == '+') ++begin;
  auto [ptr, ec] = std::from_chars(begin, end, *out);
  return !s.empty() && ec == std::errc() && ptr == end && std::isfinite(*out);
}

}  // namespace

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

bool allow_large_values() { return g_allow_large; }
void set_allow_large_values(bool allow) { g_allow_large = allow; }

std::string ValueRange::describe() const {
  if (!choices.empty()) return "one of: " + join_names(choices);
  std::string out = type == Type::kInteger ? "an integer" : "a number";
  if (min && max) {
    out += std::string(" in ") + (min_exclusive ? "(" : "[") + bound_text(*min) + ", " +
           bound_text(*max) + (max_exclusive ? ")" : "]");
  } else if (min) {
    out += (min_exclusive ? " > " : " >= ") + bound_text(*min);
  } else if (max) {
    out += (max_exclusive ? " < " : " <= ") + bound_text(*max);
  }
  if (confirm_above && (!max || *confirm_above < *max)) {
    out += ", at most " + bound_text(*confirm_above) + " without --allow-large";
  }
  return out;
}

std::string ValueRange::check(const std::string& value, bool allow_large) const {
  if (!choices.empty()) {
    for (const auto& c : choices) {
      if (c == value) return "";
    }
    return "must be " + describe();
  }
  if (unconstrained()) return "";
  double v = 0;
  if (type == Type::kInteger) {
    int64_t i = 0;
    if (!parse_integer(value, &i)) return "must be " + describe();
    v = static_cast<double>(i);
  } else if (!parse_number(value, &v)) {
    return "must be " + describe();
  }
  const bool low = min && (min_exclusive ? !(v > *min) : !(v >= *min));
  const bool high = max && (max_exclusive ? !(v < *max) : !(v <= *max));
  if (low || high) return "must be " + describe();
  if (confirm_above && v > *confirm_above && !allow_large) {
    return "is above " + bound_text(*confirm_above) +
           " (a bound against typos and runs that never end); pass --allow-large to run it";
  }
  return "";
}

void check_option_value(const std::string& entry, const OptionSpec& spec,
                        const std::string& value) {
  const std::string why = spec.range.check(value, allow_large_values());
  if (!why.empty()) {
    throw UsageError("option '" + entry + "." + spec.key + "' = '" + value + "': " + why);
  }
}

void check_below(const std::string& entry, const std::string& key, int64_t value, int64_t bound,
                 const std::string& what) {
  if (value < bound) return;
  throw UsageError("option '" + entry + "." + key + "' = '" + std::to_string(value) +
                   "': must be < " + std::to_string(bound) + " (" + what + ")");
}

}  // namespace copaint
