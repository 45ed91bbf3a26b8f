// Metrics over a set (metrics/set_metric.h) in the harness, and input provenance across folders:
// a set score is stored once a cell is complete (not while it is not), recomputed when a resume
// or a merge completes it or its samples change, computed from features cached by feature key
// (a changed key never reuses them), shown by `report` in markdown, CSV and LaTeX with n and the
// metric's note; `report A B` names the first image whose inputs differ; `export-inputs` writes
// the input fingerprints into manifest.json and `score` refuses predictions made on other inputs.
// Uses a test-only SetMetric (per-channel means and standard deviations as features, the squared
// distance of the two sets' mean features as the score) so that it does not depend on FID/KID,
// and the analytic `gaussian` model with `blended` on 8x8 PNG folders.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <unistd.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/external.h"
#include "experiments/experiment/runner.h"
#include "experiments/imageio/image_io.h"
#include "experiments/report/report.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/registry.h"
#include "metrics/inception.h"
#include "metrics/set_metric.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

/// Calls of TestSetMetric::features (images featurised), across instances.
int64_t g_featurised = 0;

/// Features: per-channel mean and standard deviation of the image, times `scale` (so that two
/// keys give different features); score: squared distance between the mean features of the
/// samples and of the references; a note below 10 samples.
class TestSetMetric : public SetMetric {
 public:
  TestSetMetric(std::string key, double scale) : key_(std::move(key)), scale_(scale) {}
  std::string name() const override { return "test_set"; }
  bool higher_is_better() const override { return false; }
  std::string feature_key() const override { return "test-net:" + key_; }
  at::Tensor features(const at::Tensor& images) override {
    if (key_ == "fail") throw std::runtime_error("features failed");
    g_featurised += images.size(0);
    const at::Tensor x = images.to(at::kDouble).flatten(2);
    return at::cat({x.mean(2), x.std(2)}, 1).mul(scale_);
  }
  SetScore score(const at::Tensor& s, const at::Tensor& r) override {
    SetScore out;
    out.value = (s.mean(0) - r.mean(0)).pow(2).sum().item<double>();
    out.stddev = NAN;
    out.n_samples = s.size(0);
    out.n_references = r.size(0);
    if (out.n_samples < 10) out.note = "n < 10: test_set is biased";
    return out;
  }

 private:
  std::string key_;
  double scale_;
};

void register_test_set_metric() {
  register_all();
  Registry<SetMetric>::global().add(
      {"test_set",
       "a test-only metric over a set (per-channel moments)",
       {OptionSpec{"key", "k1", "the features' key (k2 scales them by 2)"}},
       [](const Options& o) {
         const std::string key = o.get("key", "k1");
         return std::make_unique<TestSetMetric>(key, key == "k2" ? 2.0 : 1.0);
       }});
}

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_sets_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d / "images");
  return d;
}

void put_image(const fs::path& dir, const std::string& name, int seed) {
  at::manual_seed(seed);
  write_image((dir / "images" / (name + ".png")).string(), at::rand({3, 8, 8}).mul(2).sub(1));
}

std::string experiment_text(const fs::path& dir, const std::string& metrics,
                            const std::string& extra = "") {
  return "name = sets\nmodel = gaussian\ndataset = folder\nmethods = blended\nmasks = half\n"
         "samples = 2\nbatch_size = 3\nmetrics = " +
         metrics +
         "\ngaussian.image_size = 8\nblended.respacing = 4\nfolder.size = 8\n"
         "folder.preprocess = none\nfolder.root = " +
         (dir / "images").string() + "\n" + extra;
}

Experiment experiment(const fs::path& dir, const std::string& metrics = "psnr, test_set",
                      const std::string& extra = "") {
  register_test_set_metric();
  return parse_experiment(experiment_text(dir, metrics, extra), "sets.ini");
}

RunSummary run_into(const Experiment& ex, const fs::path& out, int64_t stop_after = -1,
                    int64_t shard = 0, int64_t shards = 1) {
  RunOptions o;
  o.device = "cpu";
  o.out_dir = out.string();
  o.progress_seconds = 0;
  o.handle_signals = false;
  o.testing.stop_after = stop_after;
  o.shard_index = shard;
  o.shard_count = shards;
  return run_experiment(ex, o);
}

std::vector<SetScoreRecord> set_scores(const fs::path& db) {
  return ResultsDb(db.string(), false).set_scores();
}

/// The test metric's score computed here from the stored images: every ok sample's uint8 image
/// and each image's stored reference, as set_scores.h defines it.
double expected_score(const fs::path& out, double scale = 1.0) {
  ResultsDb db((out / "results.sqlite").string(), false);
  ResultsH5 h5((out / "results.h5").string(), ResultsH5::Mode::kRead);
  std::vector<at::Tensor> samples, refs;
  std::set<int64_t> seen;
  for (const auto& s : db.samples()) {
    samples.push_back(h5.read_image(s.sample_path));
    if (seen.insert(s.image_index).second) refs.push_back(h5.read_image(s.reference_path));
  }
  TestSetMetric m("x", scale);
  return m.score(m.features(at::stack(samples)), m.features(at::stack(refs))).value;
}

// Version 5 adds set_score and set_feature to a database of version 4 (a new database goes
// through every step, 3 to 4 included); the step is idempotent.
TEST(SetMetricResults, SchemaFiveMigratesFromFour) {
  const fs::path dir = temp_dir("schema");
  const std::string path = (dir / "results.sqlite").string();
  for (const char* from : {"4", "4"}) {  // twice: over a database the step already ran on
    {
      ResultsDb db(path, true);
      EXPECT_EQ(db.schema_version(), 5);
      db.exec(std::string("DROP TABLE set_score; DROP TABLE set_feature; PRAGMA user_version = ") +
              from);
    }
    ResultsDb db(path, false);
    EXPECT_EQ(db.schema_version(), 5) << from;
    EXPECT_TRUE(db.set_scores().empty());
    db.write_features("k", {{"abc", {1.0, 2.5}}});
    EXPECT_EQ(db.features("k", {"abc", "def"}).at("abc"), (std::vector<double>{1.0, 2.5}));
    EXPECT_EQ(db.features("other", {"abc"}).size(), 0u);
  }
  fs::remove_all(dir);
}

TEST(SetMetricResults, ListedAndCheckedWithThePerSampleMetrics) {
  register_test_set_metric();
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"list", "metrics"}, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("metrics over a set"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("test_set.key = k1"), std::string::npos) << out.str();
  const fs::path dir = temp_dir("names");
  const Experiment ex = experiment(dir);
  EXPECT_EQ(ex.metrics, std::vector<std::string>{"psnr"});
  EXPECT_EQ(ex.set_metrics, std::vector<std::string>{"test_set"});
  EXPECT_EQ(ex.metric_settings.at("test_set").get("key", ""), "k1");
  try {
    experiment(dir, "psnr, nosuch");
    FAIL() << "an unknown metric must be refused";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unknown metric 'nosuch'"), std::string::npos) << what;
    EXPECT_NE(what.find("lpips"), std::string::npos) << what;
    EXPECT_NE(what.find("over a set: "), std::string::npos) << what;
    EXPECT_NE(what.find("test_set"), std::string::npos) << what;
  }
  EXPECT_THROW(experiment(dir, "test_set", "test_set.nokey = 1\n"), UsageError);
  fs::remove_all(dir);
}

// Stopped before the cell is complete: no score; the resume completes it: scored, with the
// samples and references it used, equal to the score computed here from the stored images.
TEST(SetMetricResults, StoredWhenCompleteNotWhenIncompleteAndAfterResume) {
  const fs::path dir = temp_dir("resume");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = experiment(dir);
  const RunSummary first = run_into(ex, dir / "r", /*stop_after=*/3);
  ASSERT_TRUE(first.stopped);
  EXPECT_TRUE(set_scores(dir / "r" / "results.sqlite").empty());
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.set_scores, 1);
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0].metric, "test_set");
  EXPECT_EQ(scores[0].n_samples, 6);
  EXPECT_EQ(scores[0].n_references, 3);
  EXPECT_EQ(scores[0].feature_key, "test-net:k1");
  EXPECT_EQ(scores[0].note, "n < 10: test_set is biased");
  EXPECT_NEAR(scores[0].value, expected_score(dir / "r"), 1e-12);
  EXPECT_GT(scores[0].value, 0.0);
  // Nothing changed: a rerun keeps it (no features computed).
  const int64_t before = g_featurised;
  EXPECT_EQ(run_into(ex, dir / "r").set_scores, 0);
  EXPECT_EQ(g_featurised, before);
  // A sample stored as an error makes the cell incomplete: its score is dropped.
  ResultsDb((dir / "r" / "results.sqlite").string(), false)
      .exec(
          "UPDATE sample SET status = 'error', error = 'x' WHERE image_index = 2 AND "
          "sample_index = 1");
  EXPECT_EQ(run_into(ex, dir / "r").set_scores, 0);  // error rows are not retried by default
  EXPECT_TRUE(set_scores(dir / "r" / "results.sqlite").empty());
  fs::remove_all(dir);
}

// A metric that fails on a cell (a damaged file, a network error) leaves it unscored with a
// warning; the samples and the run stand.
TEST(SetMetricResults, AFailingMetricLeavesTheRunFinished) {
  const fs::path dir = temp_dir("fail");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const RunSummary s =
      run_into(experiment(dir, "psnr, test_set", "test_set.key = fail\n"), dir / "r");
  EXPECT_EQ(s.ok, 4);
  EXPECT_EQ(s.set_scores, 0);
  EXPECT_TRUE(set_scores(dir / "r" / "results.sqlite").empty());
  EXPECT_EQ(ResultsDb(s.paths.db, false).runs().back().status, "finished");
  fs::remove_all(dir);
}

// Two shards: neither holds a complete cell; the merge completes it and scores it.
TEST(SetMetricResults, MergeCompletesTheCellAndScoresIt) {
  const fs::path dir = temp_dir("merge");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const Experiment ex = experiment(dir);
  for (int64_t shard : {0, 1}) {
    const RunSummary s = run_into(ex, dir / "r", -1, shard, 2);
    EXPECT_EQ(s.set_scores, 0);
    EXPECT_TRUE(set_scores(s.paths.db).empty());
  }
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"merge", (dir / "r").string(), "--device", "cpu"}, out, err), 0) << err.str();
  EXPECT_NE(out.str().find("1 set metric score(s) computed"), std::string::npos) << out.str();
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0].n_samples, 4);
  EXPECT_NEAR(scores[0].value, expected_score(dir / "r"), 1e-12);
  fs::remove_all(dir);
}

// Features are cached per feature key and image: a second cell on the same references featurises
// only its samples; a changed key featurises everything again and never mixes the old features
// (the score equals one computed with the new features alone).
TEST(SetMetricResults, FeatureCacheIsKeyedByFeatureKey) {
  const fs::path dir = temp_dir("cache");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  int64_t before = g_featurised;
  run_into(experiment(dir), dir / "r");
  EXPECT_EQ(g_featurised - before, 4 + 2);  // 4 samples, 2 references
  ResultsDb db((dir / "r" / "results.sqlite").string(), false);
  EXPECT_EQ(db.feature_count("test-net:k1"), 6);
  // A second seed: a new cell on the same references.
  before = g_featurised;
  run_into(experiment(dir, "psnr, test_set", "seeds = 0, 1\n"), dir / "r");
  EXPECT_EQ(g_featurised - before, 4);
  EXPECT_EQ(set_scores(dir / "r" / "results.sqlite").size(), 2u);
  // Another key: every image featurised again under it; scores from the new features.
  before = g_featurised;
  run_into(experiment(dir, "psnr, test_set", "seeds = 0\ntest_set.key = k2\n"), dir / "r");
  EXPECT_EQ(g_featurised - before, 6);
  EXPECT_EQ(db.feature_count("test-net:k2"), 6);
  EXPECT_EQ(db.feature_count("test-net:k1"), 10);  // kept, not used
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  ASSERT_EQ(scores.size(), 2u);
  const SetScoreRecord& seed0 = scores[0];
  EXPECT_EQ(seed0.feature_key, "test-net:k2");
  // The score of seed 0's cell from k2 features: 4x the k1 score (features scaled by 2).
  const fs::path solo = dir / "solo";
  run_into(experiment(dir, "psnr, test_set", "test_set.key = k2\n"), solo);
  EXPECT_NEAR(seed0.value, set_scores(solo / "results.sqlite")[0].value, 1e-12);
  EXPECT_NEAR(seed0.value, expected_score(solo, 2.0), 1e-12);
  // A forged cache entry under the old key is never read for the new one.
  ResultsDb((dir / "r" / "results.sqlite").string(), false)
      .exec("UPDATE set_feature SET features = zeroblob(48) WHERE feature_key = 'test-net:k1'");
  ResultsDb((dir / "r" / "results.sqlite").string(), false).exec("DELETE FROM set_score");
  run_into(experiment(dir, "psnr, test_set", "seeds = 0\ntest_set.key = k2\n"), dir / "r");
  EXPECT_NEAR(set_scores(dir / "r" / "results.sqlite")[0].value, seed0.value, 1e-12);
  fs::remove_all(dir);
}

// Samples recomputed (--force) change the images a score used: it is recomputed.
TEST(SetMetricResults, RecomputedWhenTheCellsSamplesChange) {
  const fs::path dir = temp_dir("force");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const Experiment ex = experiment(dir);
  run_into(ex, dir / "r");
  const std::string digest = set_scores(dir / "r" / "results.sqlite")[0].inputs_sha256;
  // Replace one stored sample's pixels: the digest of the images differs, the score follows.
  {
    ResultsDb db((dir / "r" / "results.sqlite").string(), false);
    const SampleRecord s = db.samples().front();
    ResultsH5 h5((dir / "r" / "results.h5").string(), ResultsH5::Mode::kWrite);
    h5.write_image(s.sample_path, at::ones({3, 8, 8}));
    h5.close();
  }
  EXPECT_EQ(run_into(ex, dir / "r").set_scores, 1);
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  EXPECT_NE(scores[0].inputs_sha256, digest);
  EXPECT_NEAR(scores[0].value, expected_score(dir / "r"), 1e-12);
  fs::remove_all(dir);
}

TEST(SetMetricReport, ColumnsInMarkdownCsvAndLatex) {
  const fs::path dir = temp_dir("report");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  run_into(experiment(dir), dir / "r");
  const double value = set_scores(dir / "r" / "results.sqlite")[0].value;
  char text[64];
  std::snprintf(text, sizeof text, "%.4f", value);
  std::ostringstream md, csv, tex, err;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--strict"}, md, err), 0) << err.str();
  EXPECT_NE(md.str().find("### test_set over each complete cell (lower is better)"),
            std::string::npos)
      << md.str();
  EXPECT_NE(md.str().find(std::string(text) + " (n=4)*"), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("* n < 10: test_set is biased"), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("### psnr"), std::string::npos) << md.str();  // beside psnr
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--format", "csv"}, csv, err), 0);
  EXPECT_NE(csv.str().find(",promised_samples,nonfinite_grad_samples,kind,note\n"),
            std::string::npos)
      << csv.str();
  std::snprintf(text, sizeof text, "%.10f", value);
  EXPECT_NE(csv.str().find("test_set,0,blended,blended,,half,4,2,0," + std::string(text) +
                           ",nan,,,,,,4,,set,n < 10: test_set is biased\n"),
            std::string::npos)
      << csv.str();
  EXPECT_NE(csv.str().find(",sample,\n"), std::string::npos) << csv.str();
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--format", "latex"}, tex, err), 0);
  std::snprintf(text, sizeof text, "%.4f", value);
  EXPECT_NE(tex.str().find(std::string(text) + " {\\scriptsize (n=4)}$^*$"), std::string::npos)
      << tex.str();
  EXPECT_NE(tex.str().find("test\\_set $\\downarrow$"), std::string::npos) << tex.str();
  EXPECT_NE(tex.str().find("$^*$ n \\textless{} 10: test\\_set is biased."), std::string::npos)
      << tex.str();
  // --metric selects it alone.
  std::ostringstream only;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--metric", "test_set"}, only, err), 0)
      << err.str();
  EXPECT_EQ(only.str().find("### psnr"), std::string::npos) << only.str();
  EXPECT_NE(only.str().find("### test_set"), std::string::npos) << only.str();
  fs::remove_all(dir);
}

// A cell that is complete but holds no set score (weights missing at merge time): --strict says so.
TEST(SetMetricReport, CompleteCellWithoutItsSetScoreIsIncomplete) {
  const fs::path dir = temp_dir("strict");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  run_into(experiment(dir), dir / "r");
  ResultsDb((dir / "r" / "results.sqlite").string(), false).exec("DELETE FROM set_score");
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"report", (dir / "r").string(), "--strict"}, out, err), 1);
  EXPECT_NE(err.str().find("test_set not scored (cell complete"), std::string::npos) << err.str();
  fs::remove_all(dir);
}

TEST(ReportInputs, TwoFoldersWithDifferentInputsNameTheFirstDifferingImage) {
  const fs::path a = temp_dir("a"), b = temp_dir("b");
  for (const char* n : {"a", "b", "c"}) {
    put_image(a, n, n[0]);
    put_image(b, n, n[0] + (n[0] == 'b' ? 100 : 0));  // image 1 differs
  }
  run_into(experiment(a, "psnr"), a / "r");
  run_into(experiment(b, "psnr"), b / "r");
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"report", (a / "r").string(), (b / "r").string()}, out, err), 0) << err.str();
  EXPECT_NE(err.str().find("warning: inputs differ: folder x half"), std::string::npos)
      << err.str();
  EXPECT_NE(err.str().find("first difference: image 1 ('b'): pixels differ"), std::string::npos)
      << err.str();
  // The same inputs: no warning.
  const fs::path c = temp_dir("c");
  for (const char* n : {"a", "b", "c"}) put_image(c, n, n[0]);
  run_into(experiment(c, "psnr"), c / "r");
  std::ostringstream out2, err2;
  ASSERT_EQ(run_cli({"report", (a / "r").string(), (c / "r").string()}, out2, err2), 0);
  EXPECT_EQ(err2.str().find("inputs differ"), std::string::npos) << err2.str();
  for (const auto& d : {a, b, c}) fs::remove_all(d);
}

// export-inputs writes the fingerprints `run` stores; score checks predictions against them.
TEST(ScoreManifest, WrittenByExportAndCheckedByScore) {
  const fs::path dir = temp_dir("manifest");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const fs::path ini = dir / "sets.ini";
  std::ofstream(ini) << experiment_text(dir, "psnr, test_set");
  register_test_set_metric();
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"export-inputs", ini.string(), "--out", (dir / "x").string()}, out, err), 0)
      << err.str();
  std::ifstream mf(dir / "x" / "manifest.json");
  const nlohmann::json m = nlohmann::json::parse(mf);
  ASSERT_EQ(m.at("inputs").size(), 1u);
  const auto& set = m.at("inputs")[0];
  EXPECT_EQ(set.at("dataset"), "folder");
  EXPECT_EQ(set.at("images"), 2);
  EXPECT_EQ(set.at("items")[1].at("image_id"), "b");
  // The same fingerprint as a run stores.
  run_into(experiment(dir), dir / "r");
  const auto sets = ResultsDb((dir / "r" / "results.sqlite").string(), false).input_sets();
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_EQ(set.at("fingerprint"), sets[0].fingerprint);
  // Predictions: the references themselves.
  for (const char* n : {"a", "b"}) {
    for (int k : {0, 1}) {
      fs::copy_file(
          dir / "x" / "folder" / "half" / n / "gt.png",
          dir / "x" / "folder" / "half" / n / "samples" / (k ? "00001.png" : "00000.png"));
    }
  }
  ASSERT_EQ(run_cli({"score", ini.string(), "--predictions", (dir / "x").string(), "--as", "ext",
                     "--out", (dir / "r").string()},
                    out, err),
            0)
      << err.str();
  // ext's cell is complete: scored with the set metric too (the references themselves: 0).
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_NEAR(scores[1].value, 0.0, 1e-12);
  // An input changed since the export: refused, naming the image.
  put_image(dir, "b", 5);
  std::ostringstream out2, err2;
  EXPECT_EQ(run_cli({"score", ini.string(), "--predictions", (dir / "x").string(), "--as", "ext",
                     "--out", (dir / "r").string()},
                    out2, err2),
            1);
  EXPECT_NE(err2.str().find("inputs differ from the experiment's"), std::string::npos)
      << err2.str();
  EXPECT_NE(err2.str().find("image 1 ('b'): pixels differ"), std::string::npos) << err2.str();
  fs::remove_all(dir);
}

// The real fid and kid (metrics/fid.h) in a grid, on stand-in weights (every Inception tensor
// filled by formula_uniform, written as safetensors; not FID's network, only its shape): each
// complete cell is scored with n, KID's spread and FID's small-n note, and the report shows them.
TEST(SetMetricResults, FidAndKidOnStandInWeights) {
  const fs::path dir = temp_dir("fid");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const fs::path weights = dir / "standin_inception.safetensors";
  write_safetensors(weights.string(), fid_inception_formula_weights());
  register_all();
  const std::string w = weights.string();
  const Experiment ex = parse_experiment(
      experiment_text(dir, "psnr, fid, kid", "fid.weights = " + w + "\nkid.weights = " + w + "\n"),
      "sets.ini");
  EXPECT_EQ(ex.set_metrics, (std::vector<std::string>{"fid", "kid"}));
  const RunSummary s = run_into(ex, dir / "r");
  EXPECT_EQ(s.set_scores, 2);
  const auto scores = set_scores(dir / "r" / "results.sqlite");
  ASSERT_EQ(scores.size(), 2u);
  for (const auto& sc : scores) {
    EXPECT_EQ(sc.n_samples, 6) << sc.metric;
    EXPECT_EQ(sc.n_references, 3) << sc.metric;
    EXPECT_TRUE(std::isfinite(sc.value)) << sc.metric;
    EXPECT_FALSE(sc.note.empty()) << sc.metric;  // 6 samples: FID biased, KID subset capped
  }
  // Stand-in weights are never presented as FID: the scores are named fid_standin, kid_standin.
  EXPECT_EQ(scores[0].metric, "fid_standin");
  EXPECT_TRUE(std::isnan(scores[0].stddev));
  EXPECT_EQ(scores[1].metric, "kid_standin");
  EXPECT_TRUE(std::isfinite(scores[1].stddev));
  EXPECT_EQ(scores[0].feature_key, scores[1].feature_key);  // one network: features shared
  EXPECT_EQ(ResultsDb((dir / "r" / "results.sqlite").string(), false)
                .feature_count(scores[0].feature_key),
            9);
  std::ostringstream md, err;
  ASSERT_EQ(run_cli({"report", (dir / "r").string()}, md, err), 0) << err.str();
  EXPECT_NE(md.str().find("### fid_standin over each complete cell (lower is better)"),
            std::string::npos)
      << md.str();
  EXPECT_EQ(md.str().find("### fid over"), std::string::npos) << md.str();
  EXPECT_EQ(md.str().find("not scored"), std::string::npos)
      << md.str();  // fid asked, standin stored
  EXPECT_NE(md.str().find("(n=6)*"), std::string::npos) << md.str();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
