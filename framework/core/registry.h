// The registry mechanism: one Registry<T> per interface (methods, metrics, datasets, masks, models)
// mapping a name to a factory, a one-line description and the option keys it accepts.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/error.h"
#include "framework/core/options.h"

namespace copaint {

/// The values an option accepts, declared next to it and checked by Registry::resolve before any
/// factory runs (so a bad value fails before any work, naming the key, the value and the range).
struct ValueRange {
  enum class Type { kAny, kInteger, kNumber };
  Type type = Type::kAny;     ///< kAny: text (only `choices` are checked)
  std::optional<double> min;  ///< value >= min (> min when min_exclusive)
  bool min_exclusive = false;
  std::optional<double> max;  ///< value <= max (< max when max_exclusive), always
  bool max_exclusive = false;
  /// Values above this are refused unless allow_large_values() (`--allow-large`): a sane bound
  /// that a deliberate experiment may pass.
  std::optional<double> confirm_above;
  std::vector<std::string> choices;  ///< when not empty, the value is one of these (exactly)

  bool unconstrained() const {
    return type == Type::kAny && !min && !max && !confirm_above && choices.empty();
  }
  /// "an integer >= 0", "a number > 0", "an integer in [1, 1000]", "one of: linear, quad".
  std::string describe() const;
  /// "" when `value` is accepted, else why not (one phrase: "must be an integer >= 0").
  std::string check(const std::string& value, bool allow_large) const;
};

/// One accepted option of a registered entry (key relative to the entry's name). Ranges are
/// declared by chaining: `OptionSpec{"G", "2", "gradient steps"}.integer().at_least(0)`.
struct OptionSpec {
  OptionSpec() = default;
  OptionSpec(std::string name, std::string fallback, std::string line, bool keyed = true)
      : key(std::move(name)),
        default_value(std::move(fallback)),
        help(std::move(line)),
        keyed_at_default(keyed) {}

  std::string key;            ///< e.g. "G" for `copaint.G`
  std::string default_value;  ///< used when the user does not set it
  std::string help;           ///< one line for `copaint list` and --help
  /// false for an option added after results were stored: at its default it stays out of the
  /// settings that key and are stored with results, so those results still resume.
  bool keyed_at_default = true;
  ValueRange range;  ///< the values accepted (default: any)

  /// An integer (get_int) / a finite number (get_double).
  OptionSpec integer() const {
    return with([](ValueRange& r) { r.type = ValueRange::Type::kInteger; });
  }
  OptionSpec number() const {
    return with([](ValueRange& r) { r.type = ValueRange::Type::kNumber; });
  }
  /// value >= v / value > v / value <= v / value < v.
  OptionSpec at_least(double v) const {
    return with([v](ValueRange& r) {
      r.min = v;
      r.min_exclusive = false;
    });
  }
  OptionSpec above(double v) const {
    return with([v](ValueRange& r) {
      r.min = v;
      r.min_exclusive = true;
    });
  }
  OptionSpec at_most(double v) const {
    return with([v](ValueRange& r) {
      r.max = v;
      r.max_exclusive = false;
    });
  }
  OptionSpec below(double v) const {
    return with([v](ValueRange& r) {
      r.max = v;
      r.max_exclusive = true;
    });
  }
  /// value <= v unless --allow-large (see ValueRange::confirm_above).
  OptionSpec confirm_above(double v) const {
    return with([v](ValueRange& r) { r.confirm_above = v; });
  }
  OptionSpec one_of(std::vector<std::string> choices) const {
    return with([&](ValueRange& r) { r.choices = std::move(choices); });
  }

 private:
  template <class F>
  OptionSpec with(F f) const {
    OptionSpec out = *this;
    f(out.range);
    return out;
  }
};

/// Whether values above an option's confirm_above bound are accepted (`--allow-large`;
/// process-wide, default false).
bool allow_large_values();
void set_allow_large_values(bool allow);

/// Throws UsageError when `value` is outside `spec.range`:
/// "option 'copaint.G' = '1000000000': must be an integer in [0, 1000] (above 1000 with
/// --allow-large)". `entry` is the registered name that prefixes the key.
void check_option_value(const std::string& entry, const OptionSpec& spec, const std::string& value);

/// Throws UsageError "option 'repaint.jump_length' = '50': must be < 20 (the schedule's steps)"
/// unless value < bound; `what` names the bound.
void check_below(const std::string& entry, const std::string& key, int64_t value, int64_t bound,
                 const std::string& what);

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
    /// Rules between options (jump_length within the schedule), run by resolve() after each
    /// value passed its range; throws UsageError naming the key (e.g. with check_below()).
    std::function<void(const std::string& name, const Options& resolved)> check = nullptr;
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

  /// Defaults of `name` overridden by `user` (keys relative to the entry). An unknown key, or a
  /// value outside its declared range (OptionSpec::range), throws UsageError.
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
    for (const auto& spec : e.options) check_option_value(name, spec, out.get(spec.key));
    if (e.check) e.check(name, out);
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
