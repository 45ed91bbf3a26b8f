// The .npy reader on files numpy wrote (every supported dtype, byte order, Fortran order, format
// version 2) and on malformed input, and the reference's lorem bitmap when ../shared has it.
#include "datasets/npy.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dataset_test_util.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

using testing::fixture;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream b;
  b << in.rdbuf();
  return b.str();
}

TEST(Npy, ReadsEveryDtypeAndByteOrder) {
  const auto expected = at::arange(24, at::kDouble).reshape({2, 3, 4});
  const std::map<std::string, at::ScalarType> cases = {
      {"le_f4", at::kFloat}, {"be_f4", at::kFloat},      {"le_f8", at::kDouble},
      {"le_i2", at::kShort}, {"be_i4", at::kInt},        {"le_i8", at::kLong},
      {"u1", at::kByte},     {"i1", at::kChar},          {"le_u2", at::kInt},
      {"le_f2", at::kHalf},  {"fortran_f4", at::kFloat}, {"v2_f4", at::kFloat}};
  for (const auto& [name, type] : cases) {
    const NpyArray a = read_npy(fixture("npy/" + name + ".npy"));
    EXPECT_EQ(a.data.scalar_type(), type) << name;
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3, 4})) << name;
    EXPECT_TRUE(at::equal(a.data.to(at::kDouble), expected)) << name;
    EXPECT_TRUE(a.data.is_contiguous()) << name;
    EXPECT_EQ(a.fortran_order, name == "fortran_f4") << name;
  }
}

TEST(Npy, BoolScalarAndEmpty) {
  const NpyArray b = read_npy(fixture("npy/bool.npy"));
  EXPECT_EQ(b.data.scalar_type(), at::kBool);
  EXPECT_TRUE(at::equal(b.data, at::arange(24).reshape({2, 3, 4}).remainder(3).eq(0)));
  const NpyArray s = read_npy(fixture("npy/scalar_f8.npy"));
  EXPECT_EQ(s.data.dim(), 0);
  EXPECT_EQ(s.data.item<double>(), 2.5);
  const NpyArray e = read_npy(fixture("npy/empty_u1.npy"));
  EXPECT_EQ(e.data.sizes(), (at::IntArrayRef{0, 5}));
}

TEST(Npy, RejectsMalformedFiles) {
  const std::string good = slurp(fixture("npy/le_f4.npy"));
  ASSERT_FALSE(good.empty());
  EXPECT_NO_THROW(parse_npy(good, "good"));
  EXPECT_THROW(parse_npy("", "empty"), InputError);
  EXPECT_THROW(parse_npy("PK\x03\x04 not numpy at all", "zip"), InputError);
  EXPECT_THROW(parse_npy(good.substr(0, good.size() - 1), "short"), InputError);
  EXPECT_THROW(parse_npy(good + "x", "long"), InputError);
  EXPECT_THROW(parse_npy(good.substr(0, 40), "cut header"), InputError);
  std::string bad_version = good;
  bad_version[6] = 9;
  EXPECT_THROW(parse_npy(bad_version, "version"), InputError);
  std::string huge_header = good;
  huge_header[8] = '\xff';
  huge_header[9] = '\xff';
  EXPECT_THROW(parse_npy(huge_header, "header length"), InputError);
  std::string bad_dtype = good;
  bad_dtype.replace(bad_dtype.find("<f4"), 3, "<c8");
  EXPECT_THROW(parse_npy(bad_dtype, "complex"), InputError);
  std::string bad_shape = good;
  bad_shape.replace(bad_shape.find("(2, 3, 4)"), 9, "(2, 3, x)");
  EXPECT_THROW(parse_npy(bad_shape, "shape"), InputError);
  std::string big_shape = good;
  big_shape.replace(big_shape.find("(2, 3, 4)"), 9, "(99999999999999999999)");
  EXPECT_THROW(parse_npy(big_shape, "overflow"), InputError);
  EXPECT_THROW(read_npy(fixture("npy/structured.npy")), InputError);
  EXPECT_THROW(read_npy(fixture("npy/no_such_file.npy")), InputError);
  try {
    read_npy(fixture("npy/no_such_file.npy"));
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_file.npy"), std::string::npos);
  }
}

TEST(Npy, ReadsReferenceLoremBitmap) {
  const std::string path = testing::shared("data/lorem3.npy");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "reference lorem bitmap absent: " << path;
  const NpyArray a = read_npy(path);
  EXPECT_EQ(a.descr, "|u1");
  EXPECT_EQ(a.data.sizes(), (at::IntArrayRef{256, 256}));
  EXPECT_EQ(a.data.max().item<int>(), 1);
  EXPECT_EQ(a.data.min().item<int>(), 0);
}

}  // namespace
}  // namespace copaint
