// Dotted-key settings (`copaint.G=2`, `ddim.steps=250`): parsing `key=value` assignments, merging
// (later wins), typed access, scoping by prefix, and the canonical text and hash that key results.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace copaint {

/// An ordered map from dotted keys to string values. Values are typed on access.
class Options {
 public:
  Options() = default;
  Options(std::initializer_list<std::pair<const std::string, std::string>> values);

  void set(const std::string& key, const std::string& value);
  /// Parses "key=value" (spaces around both trimmed); throws UsageError when malformed.
  void set_assignment(const std::string& assignment);
  bool has(const std::string& key) const;
  void erase(const std::string& key);

  /// The value of `key`; throws UsageError naming the key when it is absent.
  const std::string& get(const std::string& key) const;
  std::string get(const std::string& key, const std::string& fallback) const;
  int64_t get_int(const std::string& key) const;
  double get_double(const std::string& key) const;
  /// Accepts true/false, yes/no, on/off, 1/0 (case-insensitive).
  bool get_bool(const std::string& key) const;
  /// Comma-separated list, items trimmed, empty items dropped.
  std::vector<std::string> get_list(const std::string& key) const;

  /// Copies every entry of `other` into this one; `other` wins on conflicts.
  void merge(const Options& other);
  /// Entries whose key starts with `prefix.`, with that prefix removed.
  Options scope(const std::string& prefix) const;
  /// Every key with `prefix.` prepended.
  Options prefixed(const std::string& prefix) const;

  /// One `key = value` line per entry, sorted by key, numbers and booleans normalised
  /// (`0.020` -> `0.02`, `1e-4` -> `0.0001`, `True` -> `true`), so equal settings print equal.
  std::string canonical() const;
  /// 16 hex digits of the 64-bit FNV-1a hash of canonical().
  std::string hash() const;

  const std::map<std::string, std::string>& values() const { return values_; }
  bool empty() const { return values_.empty(); }
  size_t size() const { return values_.size(); }
  bool operator==(const Options& other) const { return canonical() == other.canonical(); }

 private:
  std::map<std::string, std::string> values_;
};

/// Options from a list of "key=value" strings (as given to `--set`).
Options parse_assignments(const std::vector<std::string>& assignments);

/// The canonical spelling of one value (see Options::canonical).
std::string canonical_value(const std::string& value);

/// The text of a number as defaults are stored and listed: canonical_value of the shortest
/// round-trip spelling (so a default parses back to the same double).
std::string number_text(double value);

/// `s` without leading and trailing white space.
std::string trim(const std::string& s);

/// Splits on commas, trims items, drops empty ones.
std::vector<std::string> split_list(const std::string& text);

/// 16 hex digits of the 64-bit FNV-1a hash of `text`.
std::string fnv1a_hex(const std::string& text);

}  // namespace copaint
