// Tests of the experiment runner: grid expansion and the axis rule, file errors naming lines,
// dry-run cost, SQLite rows and views, resume after a stop and after a hard crash, error rows,
// sharding + merge, batch packing independence, and the shipped experiment files (parsed and
// dry-run only). Uses the analytic `gaussian` model on a synthetic 8x8 dataset with tiny steps.
#include "experiments/experiment/runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include "datasets/dataset.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/imageio/image_io.h"
#include "experiments/report/plots.h"
#include "experiments/report/report.h"
#include "experiments/store/merge.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "methods/sampling.h"
#include "tests/test_paths.h"

extern char** environ;

namespace copaint {
namespace {

namespace fs = std::filesystem;

/// 8x8 RGB images, image i's first pixel is -1 + 0.25 i (runner_flaky's poison marker).
class SyntheticDataset : public Dataset {
 public:
  SyntheticDataset(int64_t count, int64_t size) : count_(count), size_(size) {}
  int64_t size() const override { return count_; }
  ImageItem get(int64_t i) const override {
    at::Tensor img =
        at::arange(3 * size_ * size_, at::kFloat).reshape({3, size_, size_}).mul(0.37 * (i + 1));
    img = img.sin().mul(0.8);
    img[0][0][0] = -1.0 + 0.25 * static_cast<double>(i);
    return {"syn" + std::to_string(i), img, -1};
  }

 private:
  int64_t count_, size_;
};

/// The synthetic images, but image `bad` cannot be read (as a corrupt file): get throws.
class CorruptDataset : public SyntheticDataset {
 public:
  CorruptDataset(int64_t count, int64_t size, int64_t bad)
      : SyntheticDataset(count, size), bad_(bad) {}
  ImageItem get(int64_t i) const override {
    if (i == bad_) throw InputError("cannot decode 'img" + std::to_string(i) + ".png': corrupt");
    return SyntheticDataset::get(i);
  }

 private:
  int64_t bad_;
};

/// Known pixels copied, unknown ones noise; throws for images whose first pixel > fail_above.
class FlakyMethod : public Method {
 public:
  explicit FlakyMethod(double fail_above) : fail_above_(fail_above) {}
  InpaintOutput run(Denoiser&, const InpaintInput& in) override {
    for (int64_t b = 0; b < in.image.size(0); ++b) {
      if (in.image[b][0][0][0].item<double>() > fail_above_) throw InputError("poisoned image");
    }
    const at::Tensor m = in.mask.expand_as(in.image);
    InpaintOutput out;
    out.sample = in.image * m + (1 - m) * initial_noise(in).clamp(-1, 1);
    out.evals.forwards = 1;
    return out;
  }
  int64_t expected_forwards(int64_t) const override { return 1; }

 private:
  double fail_above_;
};

void register_test_entries() {
  register_all();
  Registry<Dataset>::global().add({"runner_synthetic",
                                   "test images",
                                   {{"count", "3", ""}, {"size", "8", ""}},
                                   [](const Options& o) -> std::unique_ptr<Dataset> {
                                     return std::make_unique<SyntheticDataset>(o.get_int("count"),
                                                                               o.get_int("size"));
                                   }});
  Registry<Dataset>::global().add({"runner_corrupt",
                                   "test images, one unreadable",
                                   {{"count", "3", ""}, {"size", "8", ""}, {"bad", "0", ""}},
                                   [](const Options& o) -> std::unique_ptr<Dataset> {
                                     return std::make_unique<CorruptDataset>(
                                         o.get_int("count"), o.get_int("size"), o.get_int("bad"));
                                   }});
  Registry<Method>::global().add({"runner_flaky",
                                  "test method",
                                  {{"fail_above", "2", ""}},
                                  [](const Options& o) -> std::unique_ptr<Method> {
                                    return std::make_unique<FlakyMethod>(
                                        o.get_double("fail_above"));
                                  }});
}

/// A small grid on the gaussian model: 2 variants of copaint + blended, 2 masks, 3 images x 2
/// samples = 36 samples.
const char* kTinyExperiment = R"INI(# tiny grid
name = tiny
model = gaussian
dataset = runner_synthetic
methods = copaint, blended
masks = half, line
seeds = 3
samples = 2
metrics = psnr, known_mse
batch_size = 4

[gaussian]
image_size = 8
std = 0.6

[copaint]
respacing = 10
G = 1,2
lr_xt = 0.05

[blended]
respacing = 10
)INI";

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_runner_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

/// (cell key, image, sample) -> (status, scores, uint8 sample image).
struct Row {
  std::string status;
  std::map<std::string, double> scores;
  at::Tensor image;
};
using Rows = std::map<std::tuple<std::string, int64_t, int64_t>, Row>;

Rows read_rows(const std::vector<std::string>& dbs) {
  const ResultSet rs = load_results(dbs);
  Rows out;
  for (const auto& s : rs.samples) {
    Row r;
    r.status = s.status;
    for (const auto& sc : s.scores) r.scores[sc.metric] = sc.value;
    if (s.status == "ok")
      r.image = ResultsH5(s.h5_file, ResultsH5::Mode::kRead).read_uint8(s.sample_path);
    out[{rs.cells[s.cell_id].key, s.image_index, s.sample_index}] = r;
  }
  return out;
}

void expect_same_rows(const Rows& a, const Rows& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, ra] : a) {
    auto it = b.find(key);
    ASSERT_NE(it, b.end()) << std::get<0>(key) << " " << std::get<1>(key);
    const Row& rb = it->second;
    EXPECT_EQ(ra.status, rb.status);
    ASSERT_EQ(ra.scores.size(), rb.scores.size());
    for (const auto& [m, v] : ra.scores) EXPECT_DOUBLE_EQ(v, rb.scores.at(m)) << m;
    if (ra.status == "ok") EXPECT_TRUE(at::equal(ra.image, rb.image));
  }
}

int64_t count_rows(const std::string& db, const std::string& where = "1") {
  ResultsDb d(db, false);
  return std::stoll(d.query_text("SELECT COUNT(*) FROM sample WHERE " + where));
}

class Runner : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_test_entries(); }
};

// ---------------------------------------------------------------------------------------------
// Experiment files

TEST_F(Runner, GridIsTheCrossProductWithMethodAxesOnly) {
  // (A second [gaussian] section would be a duplicate: the setting comes as an override.)
  const Experiment ex =
      parse_experiment(std::string(kTinyExperiment), "tiny.ini", {"seeds=3,4", "gaussian.mean=0"});
  // copaint: 2 variants, blended: 1; x 2 masks x 2 seeds.
  ASSERT_EQ(ex.cells.size(), 12u);
  EXPECT_EQ(ex.cells[0].method, "copaint");
  EXPECT_EQ(ex.cells[0].axes_label(), "G=1");
  EXPECT_EQ(ex.cells[0].mask, "half");
  EXPECT_EQ(ex.cells[0].seed, 3);
  EXPECT_EQ(ex.cells[1].seed, 4);
  EXPECT_EQ(ex.cells[2].mask, "line");
  EXPECT_EQ(ex.cells[4].axes_label(), "G=2");
  EXPECT_EQ(ex.cells[4].method_settings.get("G"), "2");
  EXPECT_EQ(ex.cells[4].method_settings.get("lr_xt"), "0.05");
  EXPECT_EQ(ex.cells[4].method_settings.get("respacing"), "10");
  EXPECT_EQ(ex.cells[8].method, "blended");
  EXPECT_EQ(ex.cells[8].axes_label(), "");
  std::set<std::string> keys;
  for (const auto& c : ex.cells) {
    EXPECT_EQ(c.index, &c - ex.cells.data());
    keys.insert(c.key());
    // expected_forwards is the method's own estimate.
    auto m = Registry<Method>::global().create(c.method, c.method_settings);
    EXPECT_EQ(c.expected_forwards, m->expected_forwards(1000));
    EXPECT_GT(c.expected_forwards, 0);
  }
  EXPECT_EQ(keys.size(), ex.cells.size());
  // The resolved config keeps the axis as a list and fills defaults.
  EXPECT_EQ(ex.config.get("copaint.G"), "1,2");
  EXPECT_EQ(ex.config.get("copaint.coef_xt_reg"), "0.0001");
  EXPECT_EQ(ex.config.get("seeds"), "3,4");
}

TEST_F(Runner, CommasOutsideAxisKeysAreLiteral) {
  EXPECT_TRUE(is_axis_key("methods", {}));
  EXPECT_TRUE(is_axis_key("masks", {}));
  EXPECT_TRUE(is_axis_key("seeds", {}));
  EXPECT_TRUE(is_axis_key("copaint.G", {"copaint"}));
  EXPECT_FALSE(is_axis_key("copaint.G", {"blended"}));
  EXPECT_FALSE(is_axis_key("adm.channel_mult", {"copaint"}));
  const Experiment ex = parse_experiment(
      "model = adm\ndataset = runner_synthetic\nmethods = blended\nmasks = half\n"
      "adm.channel_mult = 1,2,2\nadm.attention_resolutions = 16,8\nadm.image_size = 32\n"
      "adm.checkpoint = /nonexistent.pt\n",
      "axes.ini");
  ASSERT_EQ(ex.cells.size(), 1u);
  EXPECT_EQ(ex.model_settings.get("channel_mult"), "1,2,2");
  EXPECT_EQ(ex.model_settings.get("attention_resolutions"), "16,8");
  EXPECT_EQ(ex.name, "axes");
}

TEST_F(Runner, MalformedFilesFailNamingTheLine) {
  auto message = [](const std::string& text, std::vector<std::string> sets = {}) {
    try {
      parse_experiment(text, "bad.ini", sets);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string head =
      "model = gaussian\ndataset = runner_synthetic\nmethods = blended\nmasks = half\n";
  auto has = [](const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
  };
  std::string m = message(head + "colour = blue\n");
  EXPECT_TRUE(has(m, "bad.ini:5") && has(m, "unknown key 'colour'")) << m;
  m = message(head + "[blended]\nrespacing = 10\nstepz = 3\n");
  EXPECT_TRUE(has(m, "bad.ini:7") && has(m, "blended.stepz") && has(m, "respacing")) << m;
  m = message(
      "model = gaussian\ndataset = runner_synthetic\nmethods = blended, nope\nmasks = half\n");
  EXPECT_TRUE(has(m, "bad.ini:3") && has(m, "unknown method 'nope'") && has(m, "copaint")) << m;
  m = message(head + "seeds = 1,a\n");
  EXPECT_TRUE(has(m, "bad.ini:5") && has(m, "'a'")) << m;
  m = message(
      "model = gaussian\ndataset = runner_synthetic\nmethods = blended\nmasks = half, hexagon\n");
  EXPECT_TRUE(has(m, "bad.ini:4") && has(m, "unknown mask 'hexagon'")) << m;
  m = message(head + "metrics = psnr, fld\n");  // both kinds listed: fid is a metric over a set
  EXPECT_TRUE(has(m, "bad.ini:5") && has(m, "unknown metric 'fld'") && has(m, "psnr_masked") &&
              has(m, "over a set: fid, kid"))
      << m;
  m = message(head + "samples = 0\n");
  EXPECT_TRUE(has(m, "bad.ini:5") && has(m, "samples")) << m;
  m = message(head + "[blended]\nrespacing = 10,abc\n");
  EXPECT_TRUE(has(m, "bad.ini:6") && has(m, "respacing")) << m;
  m = message(head, {"blended.G=2"});
  EXPECT_TRUE(has(m, "--set blended.G")) << m;
  m = message("dataset = runner_synthetic\nmethods = blended\nmasks = half\n");
  EXPECT_TRUE(has(m, "missing key 'model'")) << m;
  m = message(
      "model = gaussian\ndataset = runner_synthetic\nmethods = blended, blended\nmasks = "
      "half\n");
  EXPECT_TRUE(has(m, "listed twice")) << m;
  // Settings of a registered method the experiment does not use are ignored.
  EXPECT_EQ(message(head + "copaint.G = 5\n"), "no error");
}

TEST_F(Runner, MissingCheckpointFailsBeforeAnyWork) {
  const fs::path dir = temp_dir("ckpt");
  const Experiment ex = parse_experiment(
      "model = adm\ndataset = runner_synthetic\nmethods = blended\nmasks = half\n"
      "adm.image_size = 8\nadm.channel_mult = 1,2\nadm.checkpoint = /nonexistent/model.pt\n",
      "ckpt.ini");
  RunOptions o;
  o.out_dir = (dir / "out").string();
  o.device = "cpu";
  try {
    run_experiment(ex, o);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.pt"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).rfind("ckpt.ini:7: ", 0), 0u) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "results.sqlite"));
  fs::remove_all(dir);
}

TEST_F(Runner, DryRunCostIsForwardsTimesSamplesTimesImages) {
  const Experiment ex = parse_experiment(kTinyExperiment, "tiny.ini");
  RunOptions o;
  o.out_dir = temp_dir("dry").string();
  const GridPlan plan = plan_experiment(ex, o);
  EXPECT_EQ(plan.images.at("runner_synthetic"), 3);
  int64_t expected = 0;
  for (const auto& c : ex.cells) expected += c.expected_forwards * 3 * 2;
  EXPECT_EQ(plan.total_forwards, expected);
  EXPECT_EQ(plan.pending_forwards, expected);
  EXPECT_EQ(plan.selected, 36);
  EXPECT_EQ(plan.done, 0);
  std::ostringstream out;
  print_plan(ex, plan, out);
  EXPECT_NE(out.str().find(std::to_string(expected) + " UNet forwards"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("G=2"), std::string::npos);
  // The CLI prints the same.
  const std::string ini = write_file(fs::path(o.out_dir) / "tiny.ini", kTinyExperiment);
  std::ostringstream cli_out, cli_err;
  ASSERT_EQ(run_cli({"run", ini, "--dry-run", "--out", o.out_dir}, cli_out, cli_err), 0)
      << cli_err.str();
  EXPECT_NE(cli_out.str().find(std::to_string(expected) + " UNet forwards"), std::string::npos);
  fs::remove_all(o.out_dir);
}

TEST_F(Runner, ShippedExperimentsParseAndDryRun) {
  const fs::path root = COPAINT_SOURCE_DIR;
  std::map<std::string, size_t> cells;
  for (const char* name :
       {"quickstart", "paper_celebahq", "paper_imagenet", "ablation_gradient_steps",
        "ablation_time_travel", "ablation_learning_rate"}) {
    SCOPED_TRACE(name);
    const Experiment ex =
        load_experiment((root / "experiments" / (std::string(name) + ".ini")).string());
    EXPECT_EQ(ex.name, name);
    RunOptions o;
    o.out_dir = temp_dir(std::string("shipped_") + name).string();
    const GridPlan plan = plan_experiment(ex, o);
    EXPECT_TRUE(plan.images_known);
    EXPECT_GT(plan.total_forwards, 0);
    std::ostringstream out;
    print_plan(ex, plan, out);
    EXPECT_NE(out.str().find("UNet forwards"), std::string::npos);
    cells[name] = ex.cells.size();
    if (std::string(name).rfind("paper_", 0) == 0) {
      EXPECT_EQ(ex.masks.size(), 7u);
      EXPECT_EQ(ex.samples, 2);
      const int64_t images = plan.images.begin()->second;
      EXPECT_EQ(images, 100);
    }
    fs::remove_all(o.out_dir);
  }
  EXPECT_GT(cells["ablation_time_travel"], 4u);
  EXPECT_GT(cells["ablation_gradient_steps"], 2u);
}

// ---------------------------------------------------------------------------------------------
// Running, storing, resuming

TEST_F(Runner, StoresEverySampleWithRowsScoresImagesAndViews) {
  const fs::path dir = temp_dir("store");
  const Experiment ex = parse_experiment(kTinyExperiment, "tiny.ini");
  RunOptions o;
  o.out_dir = dir.string();
  o.device = "cpu";
  const RunSummary s = run_experiment(ex, o);
  EXPECT_EQ(s.selected, 36);
  EXPECT_EQ(s.ok, 36);
  EXPECT_EQ(s.errors, 0);
  EXPECT_EQ(s.paths.db, (dir / "results.sqlite").string());

  ResultsDb db(s.paths.db, false);
  EXPECT_EQ(db.query_text("PRAGMA journal_mode"), "wal");
  const auto runs = db.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].name, "tiny");
  EXPECT_EQ(runs[0].config_hash, ex.config_hash());
  EXPECT_EQ(runs[0].config, ex.config_text());
  EXPECT_EQ(runs[0].status, "finished");
  EXPECT_FALSE(runs[0].finished.empty());
  EXPECT_FALSE(runs[0].torch_version.empty());
  EXPECT_EQ(db.cells().size(), 6u);
  const auto samples = db.samples();
  ASSERT_EQ(samples.size(), 36u);
  std::set<std::tuple<int64_t, int64_t, int64_t>> unique;
  ResultsH5 h5(s.paths.h5, ResultsH5::Mode::kRead);
  const auto cells = db.cells();
  for (const auto& r : samples) {
    unique.insert({r.cell_id, r.image_index, r.sample_index});
    EXPECT_EQ(r.status, "ok");
    EXPECT_GT(r.forwards, 0);
    EXPECT_EQ(r.peak_memory, 0);
    EXPECT_EQ(r.h5_file, "results.h5");
    ASSERT_EQ(r.scores.size(), 2u);
    const CellRecord& c = cells[r.cell_id - 1];
    EXPECT_EQ(r.image_id, "syn" + std::to_string(r.image_index));
    // The stored reference is the dataset image, the stored sample scores as stored.
    const at::Tensor ref = h5.read_image(r.reference_path);
    const at::Tensor img = SyntheticDataset(3, 8).get(r.image_index).image;
    EXPECT_LE((ref - img).abs().max().item<double>(), 0.5 / 127.5 + 1e-6);
    const at::Tensor mask = h5.read_mask(r.mask_path);
    EXPECT_EQ(mask.sizes(), (std::vector<int64_t>{1, 8, 8}));
    if (c.mask == "half") EXPECT_DOUBLE_EQ(mask.mean().item<double>(), 0.5);
    const at::Tensor sample = h5.read_image(r.sample_path);
    for (const auto& sc : r.scores) {
      if (sc.metric != "known_mse") continue;
      EXPECT_FALSE(sc.higher_is_better);
      // Recomputed from the 8-bit image: equal up to quantisation.
      const double mse =
          ((sample - img).pow(2) * mask).sum().item<double>() / (mask.sum().item<double>() * 3);
      EXPECT_NEAR(sc.value, mse, 0.02);
    }
  }
  EXPECT_EQ(unique.size(), 36u);
  // The view's mean equals the mean of the score rows.
  const std::string view_mean =
      db.query_text("SELECT mean FROM cell_metric WHERE cell_id = 1 AND metric = 'psnr'");
  const std::string rows_mean = db.query_text(
      "SELECT AVG(value) FROM score JOIN sample ON sample.id = score.sample_id "
      "WHERE sample.cell_id = 1 AND metric = 'psnr'");
  EXPECT_NEAR(std::stod(view_mean), std::stod(rows_mean), 1e-12);
  EXPECT_EQ(db.query_text("SELECT count FROM cell_metric WHERE cell_id = 1 AND metric = 'psnr'"),
            "6");
  EXPECT_EQ(db.query_text("SELECT images FROM cell_best WHERE cell_id = 1 AND metric = 'psnr'"),
            "3");
  fs::remove_all(dir);
}

TEST_F(Runner, ResultsDoNotDependOnBatchPacking) {
  const fs::path dir = temp_dir("packing");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = (dir / "b1").string();
  run_experiment(parse_experiment(kTinyExperiment, "tiny.ini", {"batch_size=1"}), o);
  o.out_dir = (dir / "b0").string();
  run_experiment(parse_experiment(kTinyExperiment, "tiny.ini", {"batch_size=0"}), o);
  const Rows a = read_rows({(dir / "b1" / "results.sqlite").string()});
  const Rows b = read_rows({(dir / "b0" / "results.sqlite").string()});
  ASSERT_EQ(a.size(), 36u);
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [key, ra] : a) {
    const Row& rb = b.at(key);
    for (const auto& [m, v] : ra.scores) EXPECT_NEAR(v, rb.scores.at(m), 1e-4 * (1 + std::fabs(v)));
    EXPECT_LE((ra.image.to(at::kInt) - rb.image.to(at::kInt)).abs().max().item<int>(), 1);
  }
  fs::remove_all(dir);
}

TEST_F(Runner, ResumeAfterStopRunsOnlyTheMissingSamples) {
  const fs::path dir = temp_dir("resume");
  const Experiment ex = parse_experiment(kTinyExperiment, "tiny.ini");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = (dir / "full").string();
  run_experiment(ex, o);

  o.out_dir = (dir / "resumed").string();
  o.testing.stop_after = 10;
  const RunSummary first = run_experiment(ex, o);
  EXPECT_TRUE(first.stopped);
  const int64_t stored = count_rows(first.paths.db);
  EXPECT_GE(stored, 10);
  EXPECT_LT(stored, 36);
  // Delete some rows as well: they are recomputed too.
  {
    ResultsDb db(first.paths.db, false);
    db.exec(
        "DELETE FROM score WHERE sample_id IN (SELECT id FROM sample WHERE image_index = 1 AND "
        "cell_id = 1)");
    db.exec("DELETE FROM sample WHERE image_index = 1 AND cell_id = 1");
  }
  const int64_t left = count_rows(first.paths.db);
  o.testing.stop_after = -1;
  const RunSummary second = run_experiment(ex, o);
  EXPECT_EQ(second.skipped, left);
  EXPECT_EQ(second.ok, 36 - left);
  EXPECT_FALSE(second.stopped);
  // A third run does nothing.
  const RunSummary third = run_experiment(ex, o);
  EXPECT_EQ(third.skipped, 36);
  EXPECT_EQ(third.ok + third.errors, 0);
  EXPECT_EQ(ResultsDb(first.paths.db, false).runs().size(), 3u);
  expect_same_rows(read_rows({(dir / "full" / "results.sqlite").string()}),
                   read_rows({first.paths.db}));
  fs::remove_all(dir);
}

// The child half of ResumeAfterHardCrash: when the variable is set, this process runs the
// experiment with fault injection and exits (code kCrashExitCode) before gtest starts.
const bool kCrashChild = [] {
  const char* spec = std::getenv("COPAINT_RUNNER_CRASH_CHILD");
  if (!spec) return false;
  register_test_entries();
  const std::string s = spec;  // "<ini>|<out dir>|<crash after>"
  const auto a = s.find('|'), b = s.rfind('|');
  RunOptions o;
  o.out_dir = s.substr(a + 1, b - a - 1);
  o.device = "cpu";
  o.testing.crash_after = std::stoll(s.substr(b + 1));
  try {
    run_experiment(load_experiment(s.substr(0, a)), o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
    std::_Exit(2);
  }
  std::_Exit(3);  // not reached when the fault injection fires
}();

TEST_F(Runner, ResumeAfterHardCrashRecomputesTheUncommittedBatch) {
  const fs::path dir = temp_dir("crash");
  const std::string ini = write_file(dir / "tiny.ini", kTinyExperiment);
  const std::string out = (dir / "crashed").string();
  const std::string env = "COPAINT_RUNNER_CRASH_CHILD=" + ini + "|" + out + "|9";
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(const_cast<char*>(env.c_str()));
  envp.push_back(nullptr);
  char arg0[] = "runner_crash_child";
  char* argv[] = {arg0, nullptr};
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), kCrashExitCode);

  // Batches of 4 within a cell: cell 0's 6 samples (batches of 4 and 2) were committed; cell 1's
  // first batch of 4 reached HDF5 only.
  const std::string db = (fs::path(out) / "results.sqlite").string();
  EXPECT_EQ(count_rows(db), 6);
  {
    ResultsH5 h5((fs::path(out) / "results.h5").string(), ResultsH5::Mode::kRead);
    const Experiment ex = load_experiment(ini);
    int64_t in_h5[2] = {0, 0};
    for (int c = 0; c < 2; ++c) {
      for (int64_t i = 0; i < 3; ++i) {
        for (int64_t s = 0; s < 2; ++s) {
          in_h5[c] += h5.contains("/samples/" + ex.cells[c].key() + "/" + std::to_string(i) + "_" +
                                  std::to_string(s));
        }
      }
    }
    EXPECT_EQ(in_h5[0], 6);
    EXPECT_EQ(in_h5[1], 4);
  }
  ResultsDb(db, false).runs();  // readable
  const Experiment ex = load_experiment(ini);
  RunOptions o;
  o.device = "cpu";
  o.out_dir = out;
  const RunSummary resumed = run_experiment(ex, o);
  EXPECT_EQ(resumed.skipped, 6);
  EXPECT_EQ(resumed.ok, 30);
  o.out_dir = (dir / "full").string();
  run_experiment(ex, o);
  expect_same_rows(read_rows({(dir / "full" / "results.sqlite").string()}), read_rows({db}));
  const auto runs = ResultsDb(db, false).runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].status, "running");  // the crashed run never finished
  EXPECT_EQ(runs[1].status, "finished");
  fs::remove_all(dir);
}

TEST_F(Runner, FailingSamplesAreStoredAsErrorsAndTheRunGoesOn) {
  const fs::path dir = temp_dir("errors");
  // Images 2 and 3 have first pixel -0.5 and -0.25: above -0.6 they fail.
  const Experiment ex = parse_experiment(
      "name = flaky\nmodel = gaussian\ndataset = runner_synthetic\nmethods = runner_flaky\n"
      "masks = half\nsamples = 2\nmetrics = psnr\nbatch_size = 3\ngaussian.image_size = 8\n"
      "runner_synthetic.count = 4\nrunner_flaky.fail_above = -0.6\n",
      "flaky.ini");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = dir.string();
  const RunSummary s = run_experiment(ex, o);
  EXPECT_EQ(s.ok, 4);
  EXPECT_EQ(s.errors, 4);
  const std::string db = s.paths.db;
  EXPECT_EQ(count_rows(db, "status = 'error' AND image_index >= 2"), 4);
  EXPECT_EQ(count_rows(db, "status = 'ok' AND image_index < 2"), 4);
  EXPECT_EQ(count_rows(db, "error LIKE '%poisoned image%'"), 4);
  EXPECT_EQ(ResultsDb(db, false).query_text(
                "SELECT COUNT(*) FROM score JOIN sample ON sample.id = score.sample_id "
                "WHERE status = 'error'"),
            "0");
  // A rerun skips the errors; --retry-failed reruns them.
  EXPECT_EQ(run_experiment(ex, o).skipped, 8);
  o.retry_failed = true;
  const RunSummary retry = run_experiment(ex, o);
  EXPECT_EQ(retry.skipped, 4);
  EXPECT_EQ(retry.errors, 4);
  EXPECT_EQ(count_rows(db), 8);
  // The report counts them.
  std::ostringstream out;
  write_report(load_results({db}), ReportOptions{}, out);
  EXPECT_NE(out.str().find("[4 err]"), std::string::npos) << out.str();
  fs::remove_all(dir);
}

// A metric that cannot score a batch (psnr_masked with nothing unknown) loses only its score: the
// samples and the other metrics are stored as ok, and the method is not rerun.
TEST_F(Runner, AMetricThatCannotScoreKeepsTheSamples) {
  const fs::path dir = temp_dir("metricfail");
  const Experiment ex = parse_experiment(
      "name = nohole\nmodel = gaussian\ndataset = runner_synthetic\nmethods = blended\n"
      "masks = random\nsamples = 1\nmetrics = psnr, psnr_masked\nbatch_size = 4\n"
      "gaussian.image_size = 8\nrunner_synthetic.count = 2\nrandom.known_fraction = 1\n"
      "blended.respacing = 10\n",
      "nohole.ini");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = dir.string();
  const RunSummary s = run_experiment(ex, o);
  EXPECT_EQ(s.ok, 2);
  EXPECT_EQ(s.errors, 0);
  const Rows rows = read_rows({s.paths.db});
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& [key, row] : rows) {
    EXPECT_EQ(row.status, "ok");
    EXPECT_EQ(row.scores.count("psnr"), 1u);
    EXPECT_EQ(row.scores.count("psnr_masked"), 0u);
  }
  fs::remove_all(dir);
}

// A configuration error found only when a method runs ends the run instead of being stored as
// per-sample errors.
TEST_F(Runner, TimeTravelWithStridedStepsFailsBeforeAnyWork) {
  const fs::path dir = temp_dir("ttstride");
  EXPECT_THROW(
      {
        const Experiment ex = parse_experiment(
            "name = tt\nmodel = gaussian\ndataset = runner_synthetic\nmethods = copaint_tt\n"
            "masks = half\ngaussian.image_size = 8\nrunner_synthetic.count = 1\n"
            "copaint_tt.respacing = 50\ncopaint_tt.steps = 25\n",
            "tt.ini");
        RunOptions o;
        o.device = "cpu";
        o.out_dir = dir.string();
        run_experiment(ex, o);
      },
      UsageError);
  fs::remove_all(dir);
}

TEST_F(Runner, UnreadableImageIsSkippedAndRecordedAndTheRunGoesOn) {
  const fs::path dir = temp_dir("corrupt");
  // Image 0 (the one the runner used to check the shape with) and, in a second run, image 2.
  for (int64_t bad : {0, 2}) {
    const Experiment ex = parse_experiment(
        "name = corrupt\nmodel = gaussian\ndataset = runner_corrupt\n"
        "methods = runner_flaky, blended\nmasks = half, line\nsamples = 2\nmetrics = psnr\n"
        "batch_size = 3\ngaussian.image_size = 8\nrunner_corrupt.count = 4\n"
        "blended.respacing = 4\nrunner_corrupt.bad = " +
            std::to_string(bad) + "\n",
        "corrupt.ini");
    RunOptions o;
    o.device = "cpu";
    o.out_dir = (dir / std::to_string(bad)).string();
    // 2 methods x 2 masks x 4 images x 2 samples = 32; the bad image's 8 are errors.
    const RunSummary s = run_experiment(ex, o);
    EXPECT_EQ(s.selected, 32);
    EXPECT_EQ(s.ok, 24);
    EXPECT_EQ(s.errors, 8);
    const std::string db = s.paths.db;
    const std::string bad_row = "image_index = " + std::to_string(bad);
    EXPECT_EQ(count_rows(db, "status = 'error' AND " + bad_row), 8);
    EXPECT_EQ(count_rows(db, "status = 'error' AND error LIKE '%image " + std::to_string(bad) +
                                 " skipped%corrupt%'"),
              8);
    EXPECT_EQ(count_rows(db, "status = 'ok' AND NOT (" + bad_row + ")"), 24);
    EXPECT_EQ(count_rows(db, "status = 'ok' AND sample_path != ''"), 24);
    // The other images' results are the same as in a run on a dataset without the bad image.
    const Rows rows = read_rows({db});
    for (const auto& [key, row] : rows) {
      if (std::get<1>(key) == bad) continue;
      EXPECT_EQ(row.status, "ok");
      EXPECT_TRUE(row.image.defined());
      EXPECT_EQ(row.scores.count("psnr"), 1u);
    }
    // A rerun skips everything without crashing; --retry-failed tries the image again, and
    // records it again, without duplicating rows.
    const RunSummary again = run_experiment(ex, o);
    EXPECT_EQ(again.skipped, 32);
    EXPECT_EQ(again.errors, 0);
    o.retry_failed = true;
    const RunSummary retry = run_experiment(ex, o);
    EXPECT_EQ(retry.skipped, 24);
    EXPECT_EQ(retry.errors, 8);
    EXPECT_EQ(count_rows(db), 32);
    // The report shows the failed samples.
    std::ostringstream out;
    write_report(load_results({db}), ReportOptions{}, out);
    EXPECT_NE(out.str().find("[2 err]"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("8 failed sample(s)"), std::string::npos) << out.str();
  }
  fs::remove_all(dir);
}

TEST_F(Runner, CorruptFileInAFolderDatasetIsSkipped) {
  const fs::path dir = temp_dir("corrupt_folder");
  fs::create_directories(dir / "images");
  // a.png, c.png and d.png are real 8x8 images; b.png is truncated garbage.
  for (const char* name : {"a", "c", "d"}) {
    write_image((dir / "images" / (std::string(name) + ".png")).string(),
                at::rand({3, 8, 8}).mul(2).sub(1));
  }
  std::ofstream(dir / "images" / "b.png", std::ios::binary) << "\x89PNG\r\n\x1a\nnot really";
  const Experiment ex = parse_experiment(
      "name = corrupt_folder\nmodel = gaussian\ndataset = folder\nmethods = blended\n"
      "masks = half\nsamples = 2\nmetrics = psnr\ngaussian.image_size = 8\n"
      "blended.respacing = 4\nfolder.size = 8\nfolder.root = " +
          (dir / "images").string() + "\n",
      "corrupt_folder.ini");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = (dir / "r").string();
  const RunSummary s = run_experiment(ex, o);
  EXPECT_EQ(s.ok, 6);
  EXPECT_EQ(s.errors, 2);
  EXPECT_EQ(count_rows(s.paths.db,
                       "status = 'error' AND image_index = 1 AND error LIKE "
                       "'%image 1 skipped%b.png%'"),
            2);
  EXPECT_EQ(count_rows(s.paths.db, "status = 'ok' AND image_id IN ('a', 'c', 'd')"), 6);
  EXPECT_EQ(run_experiment(ex, o).skipped, 8);
  fs::remove_all(dir);
}

/// Pixels of `img` ([3,H,W] in [-1,1], RGB) within 2 levels of the 8-bit colour (r, g, b).
int64_t count_colour(const at::Tensor& img, int r, int g, int b) {
  const at::Tensor u8 = img.add(1).mul(127.5).round();
  return u8[0]
      .sub(r)
      .abs()
      .le(2)
      .logical_and(u8[1].sub(g).abs().le(2))
      .logical_and(u8[2].sub(b).abs().le(2))
      .sum()
      .item<int64_t>();
}

// Figures through gnuplot (skipped where it is not installed: Debian's gnuplot-nox).
TEST_F(Runner, ReportPlotsWriteOneFigurePerSweptSettingAndMetric) {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot not installed (Debian: gnuplot-nox); no figures drawn";
  const fs::path dir = temp_dir("plots");
  // copaint sweeps G (2 values) x lr_xt (2 values); blended has one variant (no ablation plots).
  const Experiment ex =
      parse_experiment(kTinyExperiment, "tiny.ini", {"copaint.lr_xt=0.02,0.05", "samples=1"});
  RunOptions o;
  o.device = "cpu";
  o.out_dir = (dir / "r").string();
  run_experiment(ex, o);
  const ResultSet rs = load_results(find_result_dbs(o.out_dir));
  PlotOptions po;
  po.width = 500;
  po.height = 360;
  const std::vector<std::string> files = write_ablation_plots(rs, po, (dir / "p").string());
  std::set<std::string> names;
  for (const auto& f : files) names.insert(fs::path(f).filename().string());
  std::set<std::string> expected;
  for (const char* stem :
       {"copaint_G_psnr", "copaint_G_known_mse", "copaint_G_seconds", "copaint_lr_xt_psnr",
        "copaint_lr_xt_known_mse", "copaint_lr_xt_seconds"}) {
    for (const char* ext : {".png", ".pdf", ".svg"}) expected.insert(std::string(stem) + ext);
  }
  EXPECT_EQ(names, expected);
  for (const auto& f : files) {
    ASSERT_TRUE(fs::is_regular_file(f)) << f;
    EXPECT_GT(fs::file_size(f), 1000u) << f;
    if (fs::path(f).extension() != ".png") continue;
    const at::Tensor img = read_image(f, 3, 0);  // decodes
    ASSERT_EQ(img.sizes(), at::IntArrayRef({3, 360, 500})) << f;
    // Lines in the first two palette colours (Okabe-Ito blue #0072B2, vermillion #D55E00), a
    // white background.
    EXPECT_GT(count_colour(img, 0, 114, 178), 20) << f;
    EXPECT_GT(count_colour(img, 213, 94, 0), 20) << f;
    EXPECT_GT(count_colour(img, 255, 255, 255), 500 * 360 / 2) << f;
  }
  // The scripts and data stay beside the figures; the PDF is a PDF, the SVG an SVG.
  EXPECT_TRUE(fs::exists(dir / "p" / "copaint_G_psnr.gp"));
  EXPECT_TRUE(fs::exists(dir / "p" / "copaint_G_psnr.dat"));
  {
    std::ifstream pdf(dir / "p" / "copaint_G_psnr.pdf");
    std::string head(4, ' ');
    pdf.read(&head[0], 4);
    EXPECT_EQ(head, "%PDF");
  }
  // Without ablation samples (only blended's kept) no ablation plot is written.
  ResultSet blended_only = rs;
  blended_only.samples.clear();
  for (const auto& s : rs.samples)
    if (rs.cells[s.cell_id].method == "blended") blended_only.samples.push_back(s);
  ASSERT_FALSE(blended_only.samples.empty());
  EXPECT_TRUE(write_ablation_plots(blended_only, po, (dir / "none").string()).empty());
  EXPECT_FALSE(fs::exists(dir / "none"));

  // Through the CLI: default size 640x480, comparison bar charts too, --metric selects exactly,
  // the files are listed on stderr.
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"report", o.out_dir, "--metric", "psnr", "--plots", (dir / "cli").string()},
                    out, err),
            0)
      << err.str();
  EXPECT_NE(err.str().find("copaint_G_psnr.png"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("compare_psnr.svg"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find("known_mse"), std::string::npos) << err.str();
  EXPECT_TRUE(fs::exists(dir / "cli" / "copaint_lr_xt_seconds.pdf"));
  EXPECT_EQ(read_image((dir / "cli" / "copaint_G_psnr.png").string(), 3, 0).sizes(),
            at::IntArrayRef({3, 480, 640}));
  // The bar chart grows by 16 px per key line beyond 4 (5 series here: one method per variant).
  EXPECT_EQ(read_image((dir / "cli" / "compare_psnr.png").string(), 3, 0).sizes(),
            at::IntArrayRef({3, 496, 640}));
  EXPECT_EQ(run_cli({"report", o.out_dir, "--plots", (dir / "x").string(), "--plot-size", "9x9"},
                    out, err),
            2);
  if (!std::getenv("COPAINT_KEEP_TEST_OUTPUT")) fs::remove_all(dir);
}

TEST(Plots, GeometricSweepsGetALogAxis) {
  EXPECT_TRUE(geometric_sweep({0.005, 0.01, 0.02, 0.05, 0.1}));
  EXPECT_TRUE(geometric_sweep({0.005, 0.02, 0.05}));
  EXPECT_TRUE(geometric_sweep({1, 2, 5, 10}));
  EXPECT_FALSE(geometric_sweep({1, 5, 10}));
  EXPECT_FALSE(geometric_sweep({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_FALSE(geometric_sweep({0, 1, 10, 100}));
  EXPECT_FALSE(geometric_sweep({1, 2}));
}

/// The rows of the first markdown table under a "### <title_start>" heading: cells trimmed.
std::vector<std::vector<std::string>> markdown_table(const std::string& text,
                                                     const std::string& title_start) {
  std::vector<std::vector<std::string>> rows;
  const auto at = text.find("### " + title_start);
  if (at == std::string::npos) return rows;
  std::istringstream in(text.substr(at));
  std::string line;
  std::getline(in, line);  // the title
  while (std::getline(in, line)) {
    if (line.empty() && rows.empty()) continue;
    if (line.empty() || line[0] != '|') break;
    if (line.find("---") != std::string::npos) continue;
    std::vector<std::string> cells;
    std::istringstream cs(line.substr(1));
    std::string c;
    while (std::getline(cs, c, '|')) {
      const auto a = c.find_first_not_of(' '), b = c.find_last_not_of(' ');
      cells.push_back(a == std::string::npos ? "" : c.substr(a, b - a + 1));
    }
    rows.push_back(cells);
  }
  return rows;
}

TEST_F(Runner, ReportPivotMaskByMethodIsTheTranspose) {
  const fs::path dir = temp_dir("pivot");
  const Experiment ex = parse_experiment(kTinyExperiment, "tiny.ini", {"samples=1"});
  RunOptions o;
  o.device = "cpu";
  o.out_dir = dir.string();
  const ResultSet rs = load_results({run_experiment(ex, o).paths.db});
  std::ostringstream a, b;
  ReportOptions ro;
  write_report(rs, ro, a);
  ro.pivot = "mask x method";
  write_report(rs, ro, b);
  const auto t = markdown_table(a.str(), "psnr"), tt = markdown_table(b.str(), "psnr");
  // method x mask: 3 variants x 2 masks; mask x method: 2 masks x 3 variants.
  ASSERT_EQ(t.size(), 4u) << a.str();
  ASSERT_EQ(tt.size(), 3u) << b.str();
  EXPECT_EQ(t[0], (std::vector<std::string>{"method", "half", "line"}));
  EXPECT_EQ(tt[0], (std::vector<std::string>{"mask", "copaint (G=1)", "copaint (G=2)", "blended"}));
  for (size_t r = 0; r < t.size(); ++r) {
    ASSERT_EQ(t[r].size(), tt.size());
    for (size_t c = 0; c < t[r].size(); ++c) {
      if (r == 0 && c == 0) continue;
      EXPECT_EQ(t[r][c], tt[c][r]) << r << "," << c;
    }
  }
  // The cell values are numbers from the data, not placeholders (one sample per image: no
  // best-of-n part).
  EXPECT_NE(tt[1][1].find('.'), std::string::npos);
  EXPECT_EQ(tt[1][1].find('('), std::string::npos);
  // Spaces optional; anything else is a usage error.
  std::ostringstream c;
  ro.pivot = "maskxmethod";
  write_report(rs, ro, c);
  EXPECT_EQ(c.str(), b.str());
  ro.pivot = "method x seed";
  EXPECT_THROW(write_report(rs, ro, c), UsageError);
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"report", dir.string(), "--pivot", "mask x method"}, out, err), 0)
      << err.str();
  EXPECT_EQ(out.str(), b.str());
  EXPECT_EQ(run_cli({"report", dir.string(), "--pivot", "method"}, out, err), 2);
  fs::remove_all(dir);
}

TEST_F(Runner, ShardsTogetherEqualTheFullRunAndMerge) {
  const fs::path dir = temp_dir("shards");
  const Experiment ex = parse_experiment(kTinyExperiment, "tiny.ini");
  RunOptions o;
  o.device = "cpu";
  o.out_dir = (dir / "full").string();
  run_experiment(ex, o);
  o.out_dir = (dir / "sharded").string();
  int64_t total = 0;
  for (int64_t i = 0; i < 3; ++i) {
    o.shard_index = i;
    o.shard_count = 3;
    const RunSummary s = run_experiment(ex, o);
    EXPECT_EQ(s.paths.db,
              (dir / "sharded" / ("results.shard-" + std::to_string(i) + "-of-3.sqlite")).string());
    EXPECT_EQ(s.selected, 12);
    total += s.ok;
  }
  EXPECT_EQ(total, 36);
  const Rows full = read_rows({(dir / "full" / "results.sqlite").string()});
  const std::vector<std::string> shard_dbs = find_result_dbs((dir / "sharded").string());
  ASSERT_EQ(shard_dbs.size(), 3u);
  expect_same_rows(full, read_rows(shard_dbs));

  const MergeSummary m = merge_results(shard_dbs, (dir / "sharded").string());
  EXPECT_EQ(m.copied, 36);
  EXPECT_EQ(m.cells, 6);
  expect_same_rows(full, read_rows({m.db}));
  // Merging again adds nothing.
  EXPECT_EQ(merge_results(shard_dbs, (dir / "sharded").string()).duplicates, 36);
  EXPECT_EQ(count_rows(m.db), 36);
  // The report over the folder (merged file and shards) counts each of the 3 runs once.
  EXPECT_EQ(load_results(find_result_dbs((dir / "sharded").string())).runs.size(), 3u);

  // A database of another experiment is refused.
  o.out_dir = (dir / "other").string();
  o.shard_index = 0;
  o.shard_count = 1;
  run_experiment(parse_experiment(kTinyExperiment, "tiny.ini", {"name=other", "methods=blended"}),
                 o);
  EXPECT_THROW(
      merge_results({(dir / "other" / "results.sqlite").string()}, (dir / "sharded").string()),
      InputError);
  fs::remove_all(dir);
}

// Speed-only model settings never split cells (a run may resume with checkpointing on); an
// explicit precision does, and the default (auto) leaves the key as it was before the setting
// existed.
TEST_F(Runner, SpeedOnlyModelSettingsKeepTheCellKey) {
  register_all();
  const std::string adm = R"INI(name = keys
model = adm
dataset = runner_synthetic
methods = blended
masks = half
[adm]
image_size = 32
num_channels = 32
channel_mult = 1,2
attention_resolutions = 16
)INI";
  const auto key = [&](std::vector<std::string> sets) {
    return parse_experiment(adm, "keys.ini", sets).cells.at(0).key();
  };
  const std::string base = key({});
  EXPECT_EQ(key({"adm.grad_checkpoint=true", "adm.channels_last=true", "adm.cudnn_benchmark=true"}),
            base);
  EXPECT_EQ(key({"adm.precision=auto"}), base);
  EXPECT_NE(key({"adm.precision=bf16"}), base);
  EXPECT_NE(key({"adm.precision=fp32"}), key({"adm.precision=bf16"}));
  Options settings = parse_experiment(adm, "keys.ini", {"adm.grad_checkpoint=true"}).model_settings;
  EXPECT_FALSE(model_settings_for_results(settings).has("grad_checkpoint"));
  EXPECT_FALSE(model_settings_for_results(settings).has("precision"));
  settings.set("precision", "tf32");
  EXPECT_EQ(model_settings_for_results(settings).get("precision"), "tf32");
}

TEST_F(Runner, CliRunReportAndExport) {
  const fs::path dir = temp_dir("cli");
  const std::string ini = write_file(dir / "tiny.ini", kTinyExperiment);
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"--device", "cpu", "run", ini, "--out", (dir / "r").string(), "--set",
                     "masks=half", "--shard", "0/2"},
                    out, err),
            0)
      << err.str();
  ASSERT_EQ(run_cli({"--device", "cpu", "run", ini, "--out", (dir / "r").string(), "--set",
                     "masks=half", "--shard", "1/2"},
                    out, err),
            0)
      << err.str();
  ASSERT_EQ(run_cli({"merge", (dir / "r").string()}, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("18 sample rows copied"), std::string::npos) << out.str();
  std::ostringstream rep;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--metric", "psnr", "--timing"}, rep, err), 0)
      << err.str();
  EXPECT_NE(rep.str().find("### psnr (higher is better)"), std::string::npos) << rep.str();
  EXPECT_EQ(rep.str().find("known_mse"), std::string::npos);
  EXPECT_NE(rep.str().find("timing per sample"), std::string::npos);
  EXPECT_NE(rep.str().find("| copaint (G=1) |"), std::string::npos);
  std::ostringstream csv;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--format", "csv"}, csv, err), 0);
  EXPECT_EQ(csv.str().rfind("dataset,model,metric", 0), 0u);
  std::ostringstream tex;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--format", "latex"}, tex, err), 0);
  EXPECT_NE(tex.str().find("\\begin{tabular}"), std::string::npos);
  EXPECT_NE(tex.str().find("MSE (known) $\\downarrow$"), std::string::npos);  // display names

  const std::string png = (dir / "s.png").string();
  ASSERT_EQ(run_cli({"export", (dir / "r").string(), "--sample", "1", "--out", png}, out, err), 0)
      << err.str();
  EXPECT_TRUE(fs::exists(png));
  const std::string grid = (dir / "grid.png").string();
  ASSERT_EQ(run_cli({"export", (dir / "r").string(), "--grid", "--out", grid, "--images", "0,2"},
                    out, err),
            0)
      << err.str();
  EXPECT_NE(out.str().find("(10 tiles)"), std::string::npos) << out.str();  // 2 rows x 5 columns
  EXPECT_TRUE(fs::exists(grid));
  // --precision sets <model>.precision: the analytic model has no such setting, so it is refused
  // by name before any work, and an unknown precision is refused at once.
  std::ostringstream perr;
  EXPECT_EQ(
      run_cli({"--device", "cpu", "--precision", "bf16", "run", ini, "--out", (dir / "p").string()},
              out, perr),
      2);
  EXPECT_NE(perr.str().find("gaussian.precision"), std::string::npos) << perr.str();
  EXPECT_FALSE(fs::exists(dir / "p" / "results.sqlite"));
  EXPECT_EQ(run_cli({"--precision", "fp8", "run", ini}, out, err), 2);
  // Bad arguments are usage errors.
  EXPECT_EQ(run_cli({"run", ini, "--shard", "2/2"}, out, err), 2);
  EXPECT_EQ(run_cli({"report", (dir / "r").string(), "--format", "html"}, out, err), 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
