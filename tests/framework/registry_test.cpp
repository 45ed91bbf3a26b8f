// Tests of Registry<T>: creation with resolved options, unknown names and keys listing valid ones.
#include "framework/registry.h"

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
