// Tests of Registry<T>: creation with resolved options, unknown names and keys listing valid ones.
#include "framework/core/registry.h"

#include <gtest/gtest.h>

namespace copaint {
namespace {

struct Widget {
  static constexpr const char* kRegistryKind = "widget";
  Options resolved;
};

Registry<Widget> make_registry() {
  Registry<Widget> r;
  r.add({"alpha",
         "first widget",
         {{"size", "3", "how big"}, {"color", "red", "which color"}},
         [](const Options& o) { return std::make_unique<Widget>(Widget{o}); }});
  r.add({"beta", "second widget", {}, [](const Options& o) {
           return std::make_unique<Widget>(Widget{o});
         }});
  return r;
}

TEST(Registry, CreatesWithDefaultsOverriddenByUser) {
  auto r = make_registry();
  auto w = r.create("alpha", Options{{"size", "7"}});
  EXPECT_EQ(w->resolved.get_int("size"), 7);
  EXPECT_EQ(w->resolved.get("color"), "red");
  EXPECT_EQ(r.names(), (std::vector<std::string>{"alpha", "beta"}));
}

// An option added after results were stored stays out of the keyed settings at its default, so
// old results keep their key; set to anything else it is part of it.
TEST(Registry, KeyedSettingsLeaveLateOptionsOutAtTheirDefault) {
  Registry<Widget> r;
  r.add({"alpha",
         "a widget with an option added later",
         {{"size", "3", "how big"},
          {"color", "red", "which color"},
          {"legacy", "false", "added later", /*keyed_at_default=*/false}},
         [](const Options& o) { return std::make_unique<Widget>(Widget{o}); }});
  const Options at_default = r.keyed("alpha", r.resolve("alpha", {}));
  EXPECT_FALSE(at_default.has("legacy"));
  EXPECT_EQ(at_default.canonical(), "color = red\nsize = 3\n");
  EXPECT_EQ(r.resolve("alpha", at_default), r.resolve("alpha", {}));
  const Options set = r.keyed("alpha", r.resolve("alpha", Options{{"legacy", "true"}}));
  EXPECT_EQ(set.get("legacy"), "true");
}

TEST(Registry, UnknownNameListsValidNames) {
  auto r = make_registry();
  try {
    r.create("gamma");
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown widget 'gamma'; valid: alpha, beta");
  }
}

TEST(Registry, UnknownOptionListsValidKeys) {
  auto r = make_registry();
  try {
    r.create("alpha", Options{{"colour", "blue"}});
    FAIL() << "expected UsageError";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "unknown option 'alpha.colour' for widget 'alpha'; valid: size, color");
  }
  EXPECT_THROW(r.create("beta", Options{{"x", "1"}}), UsageError);
}

TEST(Registry, ReAddingReplacesSoRegistrationIsIdempotent) {
  auto r = make_registry();
  r.add({"alpha", "replaced", {}, [](const Options& o) {
           return std::make_unique<Widget>(Widget{o});
         }});
  EXPECT_EQ(r.entries().size(), 2u);
  EXPECT_EQ(r.at("alpha").description, "replaced");
}

TEST(Registry, GlobalIsOnePerType) {
  Registry<Widget>::global().add(make_registry().at("beta"));
  EXPECT_TRUE(Registry<Widget>::global().contains("beta"));
  EXPECT_EQ(&Registry<Widget>::global(), &Registry<Widget>::global());
}

}  // namespace
}  // namespace copaint

namespace copaint {
namespace {

// Declared ranges and rules between options are checked when options are resolved, before any
// factory runs; defaults pass, and a bound needing confirmation passes with allow_large_values.
TEST(Registry, ResolveChecksDeclaredRangesAndRules) {
  Registry<Widget> r;
  int built = 0;
  r.add({"alpha",
         "a widget with ranges",
         {OptionSpec{"size", "3", "how big"}.integer().at_least(1).confirm_above(100),
          OptionSpec{"gain", "0.5", "how loud"}.number().above(0),
          OptionSpec{"color", "red", "which color"}.one_of({"red", "blue"}),
          OptionSpec{"hop", "1", "hop length"}.integer().at_least(1)},
         [&](const Options& o) {
           ++built;
           return std::make_unique<Widget>(Widget{o});
         },
         [](const std::string& name, const Options& o) {
           check_below(name, "hop", o.get_int("hop"), o.get_int("size"), "the size");
         }});
  EXPECT_NO_THROW(r.create("alpha"));
  auto message = [&](const Options& user) {
    try {
      r.create("alpha", user);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  built = 0;
  EXPECT_EQ(message({{"size", "0"}}),
            "option 'alpha.size' = '0': must be an integer >= 1, at most 100 without "
            "--allow-large");
  EXPECT_EQ(message({{"size", "2.5"}}).substr(0, 38), "option 'alpha.size' = '2.5': must be a");
  EXPECT_EQ(message({{"gain", "-1"}}), "option 'alpha.gain' = '-1': must be a number > 0");
  EXPECT_EQ(message({{"color", "green"}}),
            "option 'alpha.color' = 'green': must be one of: red, blue");
  EXPECT_EQ(message({{"hop", "3"}}), "option 'alpha.hop' = '3': must be < 3 (the size)");
  EXPECT_NE(message({{"size", "500"}}).find("pass --allow-large"), std::string::npos);
  EXPECT_EQ(built, 0);  // every refusal came before the factory
  set_allow_large_values(true);
  EXPECT_EQ(message({{"size", "500"}}), "no error");
  set_allow_large_values(false);
  // The canonical text of resolved options is the values as given, never rewritten by a range.
  EXPECT_EQ(r.resolve("alpha", {{"gain", "0.50"}}).canonical(),
            "color = red\ngain = 0.5\nhop = 1\nsize = 3\n");
}

}  // namespace
}  // namespace copaint
