// Settings checked before any work and incomplete results flagged: declared option ranges (key,
// value and range in one line, with the INI line), --allow-large, duplicate INI keys and
// sections, jumps within the schedule, negative CLI counts, the dry-run cost, `report --metric`
// of an unknown name, `[ok/promised]` markers after a stop, missing shards and `report --strict`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <ATen/ATen.h>

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/config.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/runner.h"
#include "experiments/report/report.h"
#include "experiments/store/results_db.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/diffusion/model.h"
#include "methods/method.h"
#include "metrics/metric.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

/// 8x8 RGB images, no files.
class TinyDataset : public Dataset {
 public:
  explicit TinyDataset(int64_t count) : count_(count) {}
  int64_t size() const override { return count_; }
  ImageItem get(int64_t i) const override {
    at::Tensor img = at::arange(3 * 64, at::kFloat).reshape({3, 8, 8}).mul(0.3 * (i + 1)).sin();
    return {"tiny" + std::to_string(i), img, -1};
  }

 private:
  int64_t count_;
};

const char* kGrid = R"INI(name = checks
model = gaussian
dataset = checks_tiny
methods = blended
masks = half, line
samples = 2
metrics = psnr
batch_size = 2

[gaussian]
image_size = 8

[blended]
respacing = 4
)INI";

class InputChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    register_all();
    Registry<Dataset>::global().add({"checks_tiny",
                                     "test images",
                                     {OptionSpec{"count", "2", ""}.integer().at_least(0)},
                                     [](const Options& o) -> std::unique_ptr<Dataset> {
                                       return std::make_unique<TinyDataset>(o.get_int("count"));
                                     }});
    dir_ = fs::temp_directory_path() /
           ("copaint_checks_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    set_allow_large_values(false);
  }
  void TearDown() override {
    set_allow_large_values(false);
    fs::remove_all(dir_);
  }
  /// The UsageError message of parsing `text` with `sets`, "" when it parses.
  static std::string error_of(const std::string& text, const std::vector<std::string>& sets = {}) {
    try {
      parse_experiment(text, "exp.ini", sets);
    } catch (const UsageError& e) {
      return e.what();
    }
    return "";
  }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  struct Cli {
    int code;
    std::string out, err;
  };
  static Cli cli(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    const int code = run_cli(args, out, err);
    return {code, out.str(), err.str()};
  }
  fs::path dir_;
};

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(OptionRanges, DescribeAndCheckEachKindOfRange) {
  const OptionSpec g = OptionSpec{"G", "2", ""}.integer().at_least(0).confirm_above(1000);
  EXPECT_EQ(g.range.describe(), "an integer >= 0, at most 1000 without --allow-large");
  EXPECT_EQ(g.range.check("2", false), "");
  EXPECT_NE(g.range.check("-1", false), "");
  EXPECT_NE(g.range.check("1.5", false), "");
  EXPECT_NE(g.range.check("1e9", false), "");
  EXPECT_TRUE(has(g.range.check("1001", false), "--allow-large"));
  EXPECT_EQ(g.range.check("1001", true), "");
  const OptionSpec lr = OptionSpec{"lr", "0.02", ""}.number().above(0);
  EXPECT_EQ(lr.range.describe(), "a number > 0");
  EXPECT_NE(lr.range.check("0", false), "");
  EXPECT_NE(lr.range.check("nan", false), "");
  EXPECT_NE(lr.range.check("inf", false), "");
  EXPECT_EQ(lr.range.check("1e-8", false), "");
  const OptionSpec f = OptionSpec{"f", "0.25", ""}.number().above(0).below(1);
  EXPECT_EQ(f.range.describe(), "a number in (0, 1)");
  EXPECT_NE(f.range.check("1", false), "");
  const OptionSpec e = OptionSpec{"mode", "a", ""}.one_of({"a", "b"});
  EXPECT_EQ(e.range.describe(), "one of: a, b");
  EXPECT_NE(e.range.check("c", false), "");
  const OptionSpec free_text{"free", "", ""};
  EXPECT_TRUE(free_text.range.unconstrained());
  try {
    check_option_value("copaint", g, "-3");
    FAIL() << "expected UsageError";
  } catch (const UsageError& err) {
    EXPECT_STREQ(err.what(),
                 "option 'copaint.G' = '-3': must be an integer >= 0, at most 1000 without "
                 "--allow-large");
  }
}

// Every default of every registered entry lies in its declared range, and ranges are declared on
// the options where one is meaningful.
TEST_F(InputChecks, EveryBuiltinDefaultIsInItsRange) {
  int ranged = 0;
  auto all = [&](const auto& registry) {
    for (const auto& e : registry.entries()) {
      EXPECT_NO_THROW(registry.resolve(e.name, {})) << e.name;
      for (const auto& s : e.options) ranged += !s.range.unconstrained();
    }
  };
  all(Registry<Method>::global());
  all(Registry<Dataset>::global());
  all(Registry<MaskGenerator>::global());
  all(Registry<Metric>::global());
  all(Registry<Denoiser>::global());
  EXPECT_GE(ranged, 80);
  for (const char* m : {"copaint", "copaint_tt", "copaint_fast"}) {
    for (const auto& s : Registry<Method>::global().at(m).options) {
      if (s.key == "G" || s.key == "lr_xt" || s.key == "max_backtracks" || s.key == "eta" ||
          s.key == "jump_length" || s.key == "mode" || s.key == "scale")
        EXPECT_FALSE(s.range.unconstrained()) << m << "." << s.key;
    }
  }
}

TEST_F(InputChecks, OutOfRangeValuesFailNamingKeyValueRangeAndLine) {
  const std::string text =
      "name = checks\nmodel = gaussian\ndataset = checks_tiny\n"
      "methods = copaint, copaint_tt, repaint, resample\nmasks = half\n"
      "[gaussian]\nimage_size = 8\n"
      "[copaint]\nrespacing = 10\nG = 1\n[copaint_tt]\nrespacing = 20\n"
      "[repaint]\nrespacing = 20\n[resample]\nrespacing = 4\n";
  ASSERT_EQ(error_of(text), "");
  struct Case {
    std::string set, want;
  };
  const std::vector<Case> cases = {
      {"copaint.G=1000000000", "--set copaint.G: option 'copaint.G' = '1000000000': is above 1000"},
      {"copaint.G=1e9", "option 'copaint.G' = '1e9': must be an integer >= 0"},
      {"copaint.G=-1", "must be an integer >= 0"},
      {"copaint.lr_xt=-0.01", "option 'copaint.lr_xt' = '-0.01': must be a number > 0"},
      {"copaint.lr_xt=0", "must be a number > 0"},
      {"copaint.max_backtracks=-1", "option 'copaint.max_backtracks' = '-1'"},
      {"copaint.eta=-0.5", "option 'copaint.eta' = '-0.5': must be a number >= 0"},
      {"copaint.schedule_type=cubic", "must be one of: linear, quad"},
      {"copaint.mode=sr", "must be one of: inpaint, super_resolution"},
      {"copaint.steps=30", "exceeds the respaced process"},
      {"copaint_tt.jump_length=20",
       "option 'copaint_tt.jump_length' = '20': must be < 20 (the schedule's 20 steps: "
       "copaint_tt.steps, or the size of copaint_tt.respacing)"},
      // A rule between options blames the key the user gave that it names first.
      {"copaint_tt.steps=10", "--set copaint_tt.steps: option 'copaint_tt.jump_length' = '10'"},
      {"copaint_tt.jump_n_sample=0", "must be an integer >= 1"},
      {"repaint.jump_length=50", "option 'repaint.jump_length' = '50': must be < 20"},
      {"repaint.variance=huge", "must be one of: auto, learned_range"},
      {"resample.particles=0", "option 'resample.particles' = '0': must be an integer >= 1"},
      {"resample.particles=5000", "is above 1000"},
      {"resample.temperature=0", "must be a number > 0"},
      {"half.x=1", "unknown option 'half.x'"},
      {"checks_tiny.count=-2", "option 'checks_tiny.count' = '-2'"},
      {"gaussian.std=0", "option 'gaussian.std' = '0': must be a number > 0"},
      {"samples=1000000", "--set samples: 'samples' = 1000000 is above 10000"},
  };
  for (const auto& c : cases) {
    const std::string m = error_of(text, {c.set});
    EXPECT_TRUE(has(m, c.want)) << c.set << " -> '" << m << "'";
  }
  // From the file: the message names its line.
  std::string in_file = text;  // G is on line 10
  in_file.replace(in_file.find("G = 1\n"), 6, "G = 1,2000\n");
  const std::string m = error_of(in_file);
  EXPECT_TRUE(has(m, "exp.ini:") && has(m, "'copaint.G' = '2000'")) << m;
  const int line = std::stoi(m.substr(m.find("exp.ini:") + 8));
  EXPECT_EQ(line, 10) << m;
  // --allow-large lets a value above the sane bound through (and nothing else).
  set_allow_large_values(true);
  EXPECT_EQ(error_of(text, {"copaint.G=2000"}), "");
  EXPECT_TRUE(has(error_of(text, {"copaint.G=-1"}), "must be an integer >= 0"));
}

TEST_F(InputChecks, DuplicateKeysAndSectionsNameBothLines) {
  std::string m = error_of(std::string("samples = 3\n") + kGrid);
  EXPECT_EQ(m, "exp.ini:7: duplicate key 'samples' (already given at line 1); keep one");
  m = error_of(std::string(kGrid) + "[blended]\neta = 0.5\n");
  EXPECT_EQ(m, "exp.ini:15: section [blended] repeats the one at line 13; merge them into one");
  // A key given at the top level and again in its section is the same key.
  m = error_of(std::string(kGrid) + "[gaussian]\n");
  EXPECT_TRUE(has(m, "section [gaussian] repeats the one at line 10")) << m;
  m = error_of(std::string("blended.respacing = 2\n") + kGrid);
  EXPECT_EQ(m, "exp.ini:15: duplicate key 'blended.respacing' (already given at line 1); keep one");
  // Layers may override the experiment file's keys (later wins): not a duplicate.
  EXPECT_NO_THROW(parse_experiment(kGrid, "exp.ini", {{"site.ini", "samples = 1\n"}}, {}));
  EXPECT_THROW(parse_ini_text("a = 1\nb = 2\na = 3\n", "x.ini"), UsageError);
}

TEST_F(InputChecks, RunFlagsAndDryRunCost) {
  const std::string exp = write("checks.ini", kGrid);
  const std::string out = (dir_ / "out").string();
  Cli r = cli({"run", exp, "--out", out, "--stop-after", "-1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "run: --stop-after must be >= 1, got -1")) << r.err;
  r = cli({"run", exp, "--out", out, "--stop-after", "0"});
  EXPECT_EQ(r.code, 2);
  r = cli({"run", exp, "--out", out, "--crash-after", "-5"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "--crash-after must be >= 0")) << r.err;
  r = cli({"run", exp, "--out", out, "--progress-every", "-1"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "--progress-every")) << r.err;
  EXPECT_FALSE(fs::exists(out));  // refused before any work
  r = cli({"train", "--dataset", "checks_tiny", "--out", out, "--lr", "0"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "train: --lr must be a number > 0")) << r.err;
  r = cli({"train", "--dataset", "checks_tiny", "--out", out, "--ema-decay", "1"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "--ema-decay must be in [0, 1)")) << r.err;
  EXPECT_FALSE(fs::exists(out));
  // An absurd G is refused before any work, dry run included; --allow-large lets it through,
  // and the dry run shows what it would cost.
  r = cli({"run", exp, "--dry-run", "--set", "methods=copaint", "--set", "copaint.respacing=4",
           "--set", "copaint.G=1000000000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "--set copaint.G: option 'copaint.G' = '1000000000': is above 1000"))
      << r.err;
  r = cli({"run", exp, "--dry-run", "--allow-large", "--set", "methods=copaint", "--set",
           "copaint.respacing=4", "--set", "copaint.G=1000000000"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "UNet forwards")) << r.out;
  // 3 DDIM calls x (1 + G) per sample, x 2 images x 2 samples x 2 masks.
  EXPECT_TRUE(has(r.out, "3000000003")) << r.out;
  EXPECT_TRUE(has(r.out, "24000000024 UNet forwards")) << r.out;
  EXPECT_FALSE(fs::exists(out));
  // `copaint list` shows each option's range.
  r = cli({"list", "methods"});
  EXPECT_TRUE(has(r.out,
                  "copaint.G = 2    gradient steps on x_t per denoising step [an integer "
                  ">= 0, at most 1000 without --allow-large]"))
      << r.out;
}

TEST_F(InputChecks, ReportRefusesAnUnknownMetric) {
  const std::string exp = write("checks.ini", kGrid);
  const std::string out = (dir_ / "out").string();
  ASSERT_EQ(cli({"run", exp, "--out", out, "--device", "cpu", "-q"}).code, 0);
  Cli r = cli({"report", out, "--metric", "nosuch"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "report: unknown metric 'nosuch'; stored: psnr")) << r.err;
  r = cli({"export", out, "--grid", "--out", (dir_ / "g.png").string(), "--tile", "-5"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "export: --sample-index must be >= 0")) << r.err;
  r = cli({"export", out, "--grid", "--out", (dir_ / "g.png").string(), "--images", "-1"});
  EXPECT_TRUE(r.code == 2 && has(r.err, "export: --images must be >= 0, got -1")) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "g.png"));
  r = cli({"report", out, "--metric", "psnr", "--strict"});
  EXPECT_EQ(r.code, 0) << r.err;  // complete: no marker, strict passes
  EXPECT_FALSE(has(r.out, "Incomplete")) << r.out;
  EXPECT_FALSE(has(r.out, "/4]")) << r.out;
  // An ok sample whose score is NaN (NaN weights, a failing metric) is not a complete result.
  ResultsDb((fs::path(out) / "results.sqlite").string(), false)
      .exec("UPDATE score SET value = NULL WHERE rowid = (SELECT MIN(rowid) FROM score)");
  r = cli({"report", out, "--strict"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has(r.out, "1 ok sample(s) have no score or a NaN score")) << r.out;
}

// After a stop, cells short of their promise are marked in every format, listed, and --strict
// fails; the run prints how to resume; resuming makes the report complete.
TEST_F(InputChecks, StoppedRunIsMarkedIncompleteUntilResumed) {
  const std::string exp = write("checks.ini", kGrid);
  const std::string out = (dir_ / "out").string();
  Cli r = cli({"run", exp, "--out", out, "--device", "cpu", "-q", "--stop-after", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "to resume: copaint --device cpu run " + exp + " --out " + out + "\n"))
      << r.out;
  r = cli({"report", out});
  EXPECT_EQ(r.code, 0);
  // batch_size 2: the first batch stores 2 of the half cell's 4 samples (2 images x 2).
  EXPECT_TRUE(has(r.out, "| blended | ")) << r.out;
  EXPECT_TRUE(has(r.out, " [2/4] |")) << r.out;
  EXPECT_TRUE(has(r.out, "Incomplete results: 2 cell(s)")) << r.out;
  EXPECT_TRUE(has(r.out, "blended / half / seed 0: 2 of 4 samples")) << r.out;
  EXPECT_TRUE(has(r.out, "blended / line / seed 0: 0 of 4 samples")) << r.out;
  EXPECT_TRUE(has(r.err, "Incomplete results")) << r.err;
  EXPECT_EQ(cli({"report", out, "--strict"}).code, 1);
  r = cli({"report", out, "--format", "csv"});
  EXPECT_TRUE(has(r.out, ",promised_samples,nonfinite_grad_samples\n")) << r.out;
  EXPECT_TRUE(has(r.out, ",blended,blended,,half,2,")) << r.out;
  const std::string row = r.out.substr(r.out.find(",blended,blended,,half,2,"));
  // promised_samples 4, then nonfinite_grad_samples empty (blended takes no gradients).
  EXPECT_EQ(row.substr(0, row.find('\n')).substr(row.find('\n') - 3), ",4,") << row;
  r = cli({"report", out, "--format", "latex"});
  EXPECT_TRUE(has(r.out, "% Incomplete results")) << r.out;
  EXPECT_TRUE(has(r.out, " [2/4]")) << r.out;

  r = cli({"run", exp, "--out", out, "--device", "cpu", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = cli({"report", out, "--strict"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(has(r.out, "Incomplete")) << r.out;
  EXPECT_FALSE(has(r.out, "/4]")) << r.out;
}

TEST_F(InputChecks, ReportListsMissingShards) {
  const std::string exp = write("checks.ini", kGrid);
  const std::string out = (dir_ / "out").string();
  ASSERT_EQ(cli({"run", exp, "--out", out, "--device", "cpu", "-q", "--shard", "0/3"}).code, 0);
  ASSERT_EQ(cli({"run", exp, "--out", out, "--device", "cpu", "-q", "--shard", "2/3"}).code, 0);
  Cli r = cli({"report", out});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(has(r.out, "Missing shards: results.shard-1-of-3.sqlite (shard 1/3)")) << r.out;
  EXPECT_TRUE(has(r.out, "/4]")) << r.out;
  EXPECT_TRUE(has(r.err, "results.shard-1-of-3.sqlite")) << r.err;
  EXPECT_EQ(cli({"report", out, "--strict"}).code, 1);
  ASSERT_EQ(cli({"run", exp, "--out", out, "--device", "cpu", "-q", "--shard", "1/3"}).code, 0);
  r = cli({"report", out, "--strict"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_FALSE(has(r.out, "Missing shards")) << r.out;
}

}  // namespace
}  // namespace copaint
