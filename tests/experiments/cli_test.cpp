// Tests of the `copaint` command line: help, version, list, and usage errors with exit code 2.
#include "experiments/app/cli.h"

#include <gtest/gtest.h>

#include <sstream>

#include "datasets/mask.h"
#include "framework/core/registry.h"
#include "methods/method.h"
#include "metrics/metric.h"

namespace copaint {
namespace {

struct Result {
  int code;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(Cli, HelpListsCommands) {
  auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("list"), std::string::npos);
  EXPECT_NE(r.out.find("--device"), std::string::npos);
  EXPECT_EQ(run({}).code, 2);
}

TEST(Cli, VersionNamesLibTorchAndCuda) {
  auto r = run({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("LibTorch: "), std::string::npos);
  EXPECT_NE(r.out.find("CUDA available: "), std::string::npos);
  EXPECT_NE(r.out.find("git revision: "), std::string::npos);
}

TEST(Cli, ListShowsEveryRegisteredEntry) {
  auto r = run({"list"});
  ASSERT_EQ(r.code, 0) << r.err;
  register_all();
  auto expect_all = [&](const std::vector<std::string>& names) {
    for (const auto& n : names) EXPECT_NE(r.out.find("  " + n + " - "), std::string::npos) << n;
  };
  expect_all(Registry<Method>::global().names());
  expect_all(Registry<Metric>::global().names());
  expect_all(Registry<MaskGenerator>::global().names());
  EXPECT_FALSE(Registry<MaskGenerator>::global().names().empty());
  EXPECT_FALSE(Registry<Metric>::global().names().empty());
  auto masks = run({"list", "masks"});
  EXPECT_EQ(masks.code, 0);
  EXPECT_NE(masks.out.find("random.known_fraction = 0.5"), std::string::npos) << masks.out;
}

TEST(Cli, UsageErrorsExitTwoAndNameValidChoices) {
  auto r = run({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'; valid: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("list"), std::string::npos);
  auto k = run({"list", "widgets"});
  EXPECT_EQ(k.code, 2);
  EXPECT_NE(k.err.find("valid: datasets, masks, methods, metrics, models"), std::string::npos);
  auto d = run({"--device", "tpu", "list"});
  EXPECT_EQ(d.code, 2);
  EXPECT_NE(d.err.find("valid: auto, cpu, cuda, cuda:N"), std::string::npos);
  EXPECT_EQ(run({"--bogus", "list"}).code, 2);
  // Exactly one line.
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

// The model's run settings are for sampling: train refuses them before reading any data, and the
// global --precision is refused outside inpaint and run.
TEST(Cli, TrainRefusesSamplingRunSettings) {
  for (const char* set :
       {"adm.precision=bf16", "adm.grad_checkpoint=true", "adm.channels_last=yes"}) {
    auto r =
        run({"train", "--dataset", "fashion_mnist", "--out", "/nonexistent/never", "--set", set});
    EXPECT_EQ(r.code, 2) << set;
    EXPECT_NE(r.err.find("applies to sampling"), std::string::npos) << r.err;
  }
  auto p = run({"--precision", "bf16", "train", "--dataset", "fashion_mnist", "--out", "/x"});
  EXPECT_EQ(p.code, 2);
  EXPECT_NE(p.err.find("inpaint and run"), std::string::npos) << p.err;
}

}  // namespace
}  // namespace copaint
