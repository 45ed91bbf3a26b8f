// Tests of dotted-key options: assignments, typed access, merging, scoping, canonical text, hash.
#include "framework/core/options.h"

#include <gtest/gtest.h>

#include "framework/core/error.h"

namespace copaint {
namespace {

TEST(Options, ParsesAssignmentsAndTrims) {
  Options o = parse_assignments({"copaint.G=5", " ddim.steps = 250 ", "name=a=b"});
  EXPECT_EQ(o.get("copaint.G"), "5");
  EXPECT_EQ(o.get_int("ddim.steps"), 250);
  EXPECT_EQ(o.get("name"), "a=b");
  EXPECT_THROW(parse_assignments({"no_equals"}), UsageError);
  EXPECT_THROW(parse_assignments({"=value"}), UsageError);
}

TEST(Options, TypedAccessRejectsBadValues) {
  Options o{{"i", "12"}, {"d", "1e-4"}, {"b", "Yes"}, {"bad", "12x"}, {"l", "half, line,,sr2"}};
  EXPECT_EQ(o.get_int("i"), 12);
  EXPECT_DOUBLE_EQ(o.get_double("d"), 1e-4);
  EXPECT_TRUE(o.get_bool("b"));
  EXPECT_THROW(o.get_int("bad"), UsageError);
  EXPECT_THROW(o.get_double("bad"), UsageError);
  EXPECT_THROW(o.get_bool("i"), UsageError);
  EXPECT_THROW(o.get("missing"), UsageError);
  EXPECT_EQ(o.get("missing", "fallback"), "fallback");
  EXPECT_EQ(o.get_list("l"), (std::vector<std::string>{"half", "line", "sr2"}));
}

TEST(Options, MergeLetsLaterWin) {
  Options file{{"copaint.G", "2"}, {"copaint.lr_xt", "0.02"}};
  Options cli{{"copaint.G", "5"}};
  file.merge(cli);
  EXPECT_EQ(file.get_int("copaint.G"), 5);
  EXPECT_EQ(file.get("copaint.lr_xt"), "0.02");
}

TEST(Options, ScopeAndPrefixAreInverse) {
  Options o{
      {"copaint.G", "2"}, {"copaint.lr_xt", "0.02"}, {"ddim.steps", "250"}, {"copaintx", "1"}};
  Options s = o.scope("copaint");
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.get("G"), "2");
  EXPECT_EQ(s.prefixed("copaint").canonical(), o.scope("copaint").prefixed("copaint").canonical());
  EXPECT_FALSE(s.has("copaintx"));
}

TEST(Options, CanonicalTextNormalisesEqualSettings) {
  Options a{{"b.lr", "0.020"}, {"a.reg", "1e-4"}, {"c.flag", "True"}, {"d.list", "1, 2,5"}};
  Options b{{"d.list", "1,2,5.0"}, {"c.flag", "true"}, {"a.reg", "0.0001"}, {"b.lr", "2e-2"}};
  EXPECT_EQ(a.canonical(), b.canonical());
  EXPECT_EQ(a.canonical(), "a.reg = 0.0001\nb.lr = 0.02\nc.flag = true\nd.list = 1,2,5\n");
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash().size(), 16u);
  Options c = a;
  c.set("b.lr", "0.021");
  EXPECT_NE(a.hash(), c.hash());
}

TEST(Options, Fnv1aMatchesKnownVectors) {
  // Published FNV-1a 64-bit test vectors.
  EXPECT_EQ(fnv1a_hex(""), "cbf29ce484222325");
  EXPECT_EQ(fnv1a_hex("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(fnv1a_hex("foobar"), "85944171f73967e8");
}

}  // namespace
}  // namespace copaint
