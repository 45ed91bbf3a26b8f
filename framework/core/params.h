// Typed option tables: each option of a params struct declared once (key, member, help, range),
// from which the registry's OptionSpecs (listing, defaults, validation) and the parsing of
// resolved options into the struct are both derived.
#pragma once

#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "framework/core/error.h"
#include "framework/core/options.h"
#include "framework/core/registry.h"

namespace copaint {

/// One option of params struct P: its OptionSpec (whose default_value is filled in from a P by
/// option_specs), its default text from a P, and how a resolved value is read into a P. Ranges
/// chain as on OptionSpec: `field("G", &CoPaintParams::G, "...").at_least(0)`.
template <class P>
struct ParamField {
  OptionSpec spec;
  std::function<std::string(const P&)> text;
  std::function<void(P&, const Options&)> assign;

  ParamField at_least(double v) const { return with(spec.at_least(v)); }
  ParamField above(double v) const { return with(spec.above(v)); }
  ParamField at_most(double v) const { return with(spec.at_most(v)); }
  ParamField below(double v) const { return with(spec.below(v)); }
  ParamField confirm_above(double v) const { return with(spec.confirm_above(v)); }
  /// At its default the option stays out of the results key (OptionSpec::keyed_at_default).
  ParamField unkeyed() const {
    OptionSpec s = spec;
    s.keyed_at_default = false;
    return with(std::move(s));
  }

 private:
  ParamField with(OptionSpec s) const {
    ParamField out = *this;
    out.spec = std::move(s);
    return out;
  }
};

/// An option stored in `member`: an integer for int64_t, a finite number for double, true/false
/// for bool, any text for std::string.
template <class P, class T>
ParamField<P> field(std::string key, T P::*member, std::string help) {
  ParamField<P> f;
  f.spec = OptionSpec{key, "", std::move(help)};
  if constexpr (std::is_same_v<T, int64_t>) {
    f.spec = f.spec.integer();
    f.text = [member](const P& p) { return std::to_string(p.*member); };
    f.assign = [member, key](P& p, const Options& o) { p.*member = o.get_int(key); };
  } else if constexpr (std::is_same_v<T, double>) {
    f.spec = f.spec.number();
    f.text = [member](const P& p) { return number_text(p.*member); };
    f.assign = [member, key](P& p, const Options& o) { p.*member = o.get_double(key); };
  } else if constexpr (std::is_same_v<T, bool>) {
    f.text = [member](const P& p) { return std::string(p.*member ? "true" : "false"); };
    f.assign = [member, key](P& p, const Options& o) { p.*member = o.get_bool(key); };
  } else {
    static_assert(std::is_same_v<T, std::string>, "field: int64_t, double, bool or std::string");
    f.text = [member](const P& p) { return p.*member; };
    f.assign = [member, key](P& p, const Options& o) { p.*member = o.get(key); };
  }
  return f;
}

/// The names of an enum's values, in the order `copaint list` shows them.
template <class E>
using EnumNames = std::vector<std::pair<std::string, E>>;

/// An enum option: one of `names` (checked by the registry), parsed into `member`.
template <class P, class E>
ParamField<P> field(std::string key, E P::*member, std::string help, EnumNames<E> names) {
  static_assert(std::is_enum_v<E>, "field with names: an enum member");
  std::vector<std::string> choices;
  for (const auto& n : names) choices.push_back(n.first);
  ParamField<P> f;
  f.spec = OptionSpec{key, "", std::move(help)}.one_of(std::move(choices));
  f.text = [member, key, names](const P& p) {
    for (const auto& n : names) {
      if (n.second == p.*member) return n.first;
    }
    throw UsageError("option '" + key + "': its value has no name");
  };
  f.assign = [member, key, names](P& p, const Options& o) {
    const std::string& v = o.get(key);
    for (const auto& n : names) {
      if (n.first == v) {
        p.*member = n.second;
        return;
      }
    }
    std::vector<std::string> valid;
    for (const auto& n : names) valid.push_back(n.first);
    throw UsageError("option '" + key + "' must be one of: " + join_names(valid) + ", got '" + v +
                     "'");
  };
  return f;
}

/// `a` followed by `b` (to append a shared block of fields to a method's table).
template <class P>
std::vector<ParamField<P>> operator+(std::vector<ParamField<P>> a,
                                     const std::vector<ParamField<P>>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// The registry's OptionSpecs of `fields`, with the defaults taken from `defaults`.
template <class P>
std::vector<OptionSpec> option_specs(const std::vector<ParamField<P>>& fields, const P& defaults) {
  std::vector<OptionSpec> out;
  for (const auto& f : fields) {
    OptionSpec s = f.spec;
    s.default_value = f.text(defaults);
    out.push_back(std::move(s));
  }
  return out;
}

/// A P from resolved options (every key of `fields` present, values already range-checked by
/// Registry::resolve); fields not in the table keep P's defaults.
template <class P>
P parse_params(const std::vector<ParamField<P>>& fields, const Options& o) {
  P p;
  for (const auto& f : fields) f.assign(p, o);
  return p;
}

}  // namespace copaint
