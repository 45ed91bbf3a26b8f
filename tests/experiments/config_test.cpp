// Tests of INI loading and the file + command-line merge.
#include "experiments/experiment/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "framework/core/error.h"

namespace copaint {
namespace {

TEST(Config, IniSectionsBecomeDottedKeys) {
  const Options o = parse_ini_text(
      "# comment\nmodel = celebahq256\n[copaint]\nG = 2\nlr_xt = 0.02\n[ddim]\nsteps=250\n",
      "t.ini");
  EXPECT_EQ(o.get("model"), "celebahq256");
  EXPECT_EQ(o.get_int("copaint.G"), 2);
  EXPECT_EQ(o.get("copaint.lr_xt"), "0.02");
  EXPECT_EQ(o.get_int("ddim.steps"), 250);
}

TEST(Config, CommandLineWinsOverFiles) {
  const auto dir = std::filesystem::temp_directory_path() / "copaint_config_test";
  std::filesystem::create_directories(dir);
  const auto a = (dir / "a.ini").string(), b = (dir / "b.ini").string();
  std::ofstream(a) << "[copaint]\nG = 2\nlr_xt = 0.02\n";
  std::ofstream(b) << "[copaint]\nlr_xt = 0.03\n";
  const Options o = resolve_settings({a, b}, {"copaint.G=5"});
  EXPECT_EQ(o.get_int("copaint.G"), 5);
  EXPECT_EQ(o.get("copaint.lr_xt"), "0.03");
  std::filesystem::remove_all(dir);
}

TEST(Config, ErrorsNameTheFile) {
  try {
    load_ini_file("/nonexistent/x.ini");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.ini"), std::string::npos);
  }
  EXPECT_THROW(parse_ini_text("[copaint\nG=2\n", "bad.ini"), InputError);
}

}  // namespace
}  // namespace copaint
