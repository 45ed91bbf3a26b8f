// The registry mechanism: one Registry<T> per interface (methods, metrics, datasets, masks, models)
// mapping a name to a factory, a one-line description and the option keys it accepts.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/error.h"
#include "framework/options.h"

namespace copaint {

/// One accepted option of a registered entry (key relative to the entry's name).
struct OptionSpec {
  std::string key;            ///< e.g. "G" for `copaint.G`
  std::string default_value;  ///< used when the user does not set it
  std::string help;           ///< one line for `copaint list` and --help
  /// false for an option added after results were stored: at its default it stays out of the
  /// settings that key and are stored with results, so those results still resume.
  bool keyed_at_default = true;
};

/// "a, b, c" (used by error messages listing valid choices).
std::string join_names(const std::vector<std::string>& names);

/// Name -> factory registry for interface T. T names its kind with
/// `static constexpr const char* kRegistryKind = "method";`.
/// Libraries register their built-ins from an explicit function (e.g. register_builtin_methods()),
/// so registration survives static linking.
template <class T>
class Registry {
 public:
  using Factory = std::function<std::unique_ptr<T>(const Options& resolved)>;
  struct Entry {
    std::string name;
    std::string description;
    std::vector<OptionSpec> options;
    Factory factory;
  };

  /// The process-wide registry of T.
  static Registry& global() {
    static Registry registry;
    return registry;
  }

  /// Adds an entry; re-adding the same name replaces it (so registration is idempotent).
  void add(Entry entry) {
    for (auto& e : entries_) {
      if (e.name == entry.name) {
        e = std::move(entry);
        return;
      }
    }
    entries_.push_back(std::move(entry));
  }

  bool contains(const std::string& name) const { return find(name) != nullptr; }

  /// The entry called `name`; throws UsageError listing the valid names.
  const Entry& at(const std::string& name) const {
    if (const Entry* e = find(name)) return *e;
    throw UsageError(std::string("unknown ") + T::kRegistryKind + " '" + name +
                     "'; valid: " + join_names(names()));
  }

  /// Defaults of `name` overridden by `user` (keys relative to the entry). An unknown key throws
  /// UsageError listing the accepted ones.
  Options resolve(const std::string& name, const Options& user) const {
    const Entry& e = at(name);
    Options out;
    std::vector<std::string> keys;
    for (const auto& spec : e.options) {
      out.set(spec.key, spec.default_value);
      keys.push_back(spec.key);
    }
    for (const auto& [k, v] : user.values()) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
        throw UsageError("unknown option '" + name + "." + k + "' for " + T::kRegistryKind + " '" +
                         name +
                         "'; valid: " + (keys.empty() ? std::string("(none)") : join_names(keys)));
      }
      out.set(k, v);
    }
    return out;
  }

  /// `resolved` without the options that leave the results key alone at their default (see
  /// OptionSpec::keyed_at_default); resolve() of the result gives `resolved` back.
  Options keyed(const std::string& name, const Options& resolved) const {
    Options out = resolved;
    for (const auto& spec : at(name).options) {
      if (!spec.keyed_at_default && out.has(spec.key) &&
          canonical_value(out.get(spec.key)) == canonical_value(spec.default_value)) {
        out.erase(spec.key);
      }
    }
    return out;
  }

  /// Resolves the options and calls the factory.
  std::unique_ptr<T> create(const std::string& name, const Options& user = {}) const {
    return at(name).factory(resolve(name, user));
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
  }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_) {
      if (e.name == name) return &e;
    }
    return nullptr;
  }
  std::vector<Entry> entries_;
};

}  // namespace copaint
