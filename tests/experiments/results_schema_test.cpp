// Tests of the results as data (issue 21): typed JSON settings and the run's environment in the
// SQLite schema (version 2), the migration of a version-1 database as the previous code wrote it,
// layered configs (`run --config`), global options after the subcommand, progress lines without
// a terminal and a clean stop on SIGTERM.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sqlite3.h>
#include <unistd.h>

#include <ATen/ATen.h>

#include "datasets/dataset.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/runner.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_json.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "methods/method.h"
#include "methods/sampling.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

class SchemaDataset : public Dataset {
 public:
  explicit SchemaDataset(int64_t count) : count_(count) {}
  int64_t size() const override { return count_; }
  ImageItem get(int64_t i) const override {
    at::Tensor img = at::arange(3 * 8 * 8, at::kFloat).reshape({3, 8, 8}).mul(0.3 * (i + 1));
    return {"img" + std::to_string(i), img.sin().mul(0.8), -1};
  }

 private:
  int64_t count_;
};

/// Known pixels copied, unknown ones noise; the first call raises `signal` (0 = none) in this
/// process, as a SLURM time limit would.
class SignalMethod : public Method {
 public:
  explicit SignalMethod(int sig) : sig_(sig) {}
  InpaintOutput run(Denoiser&, const InpaintInput& in) override {
    if (sig_ != 0 && !raised_) {
      raised_ = true;
      std::raise(sig_);
    }
    const at::Tensor m = in.mask.expand_as(in.image);
    InpaintOutput out;
    out.sample = in.image * m + (1 - m) * initial_noise(in).clamp(-1, 1);
    out.evals.forwards = 1;
    return out;
  }
  int64_t expected_forwards(int64_t) const override { return 1; }

 private:
  int sig_;
  bool raised_ = false;
};

void register_entries() {
  register_all();
  Registry<Dataset>::global().add({"schema_synthetic",
                                   "test images",
                                   {{"count", "3", ""}},
                                   [](const Options& o) -> std::unique_ptr<Dataset> {
                                     return std::make_unique<SchemaDataset>(o.get_int("count"));
                                   }});
  Registry<Method>::global().add({"schema_signal",
                                  "test method",
                                  {{"signal", "0", ""}, {"G", "1", ""}, {"flag", "false", ""}},
                                  [](const Options& o) -> std::unique_ptr<Method> {
                                    return std::make_unique<SignalMethod>(
                                        static_cast<int>(o.get_int("signal")));
                                  }});
}

/// 2 variants x 2 masks x 3 images = 12 samples.
const char* kExperiment = R"INI(name = schema
model = gaussian
dataset = schema_synthetic
methods = schema_signal
masks = half, line
metrics = psnr
batch_size = 2

[gaussian]
image_size = 8
std = 0.6

[schema_signal]
G = 1,2
)INI";

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_schema_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

class ResultsSchema : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_entries(); }
};

TEST(ResultsJson, ValuesAreTyped) {
  EXPECT_EQ(typed_json_value("8"), "8");
  EXPECT_EQ(typed_json_value("-3"), "-3");
  EXPECT_EQ(typed_json_value("0.02"), "0.02");
  EXPECT_EQ(typed_json_value("1e-05"), "1e-05");
  EXPECT_EQ(typed_json_value("true"), "true");
  EXPECT_EQ(typed_json_value("False"), "false");
  EXPECT_EQ(typed_json_value("1,2,2"), "[1,2,2]");
  EXPECT_EQ(typed_json_value("half, line"), "[\"half\",\"line\"]");
  EXPECT_EQ(typed_json_value("/data/celeba-hq"), "\"/data/celeba-hq\"");
  EXPECT_EQ(typed_json_value("1.2.3"), "\"1.2.3\"");
  EXPECT_EQ(typed_json_value(""), "\"\"");
  EXPECT_EQ(settings_text_to_json("G = 2\nlr_xt = 0.05\nuse = true\n"),
            "{\"G\":2,\"lr_xt\":0.05,\"use\":true}");
  EXPECT_EQ(settings_text_to_json("a = 1\ncopaint.G = 1,2\ncopaint.lr = 0.1\n", true),
            "{\"a\":1,\"copaint\":{\"G\":[1,2],\"lr\":0.1}}");
  EXPECT_EQ(variant_label_to_json("G=5, lr_xt=0.02"), "{\"G\":5,\"lr_xt\":0.02}");
  EXPECT_EQ(variant_label_to_json(""), "{}");
}

// The version-1 schema and rows exactly as the code before version 2 wrote them.
const char* kSchemaV1 = R"SQL(
CREATE TABLE experiment (id INTEGER PRIMARY KEY, name TEXT NOT NULL, config TEXT NOT NULL,
  config_hash TEXT NOT NULL, git_revision TEXT, torch_version TEXT, cuda TEXT, device TEXT,
  shard TEXT, started TEXT, finished TEXT, status TEXT);
CREATE TABLE cell (id INTEGER PRIMARY KEY, cell_key TEXT NOT NULL UNIQUE, position INTEGER,
  method TEXT NOT NULL, settings TEXT NOT NULL, settings_hash TEXT NOT NULL, axes TEXT,
  dataset TEXT NOT NULL, dataset_settings TEXT, mask TEXT NOT NULL, mask_settings TEXT,
  model TEXT NOT NULL, model_settings TEXT, seed INTEGER NOT NULL, mask_seed INTEGER);
CREATE TABLE sample (id INTEGER PRIMARY KEY, cell_id INTEGER NOT NULL REFERENCES cell(id),
  image_index INTEGER NOT NULL, image_id TEXT, sample_index INTEGER NOT NULL,
  run_id INTEGER REFERENCES experiment(id), seconds REAL, forwards INTEGER, backwards INTEGER,
  peak_memory INTEGER, status TEXT NOT NULL CHECK (status IN ('ok', 'error')), error TEXT,
  h5_file TEXT, sample_path TEXT, reference_path TEXT, mask_path TEXT,
  UNIQUE (cell_id, image_index, sample_index));
CREATE TABLE score (sample_id INTEGER NOT NULL REFERENCES sample(id) ON DELETE CASCADE,
  metric TEXT NOT NULL, value REAL, higher_is_better INTEGER NOT NULL,
  PRIMARY KEY (sample_id, metric));
CREATE INDEX sample_by_cell ON sample(cell_id, status);
CREATE INDEX score_by_metric ON score(metric);
CREATE VIEW cell_metric AS
  SELECT c.id AS cell_id, c.method, c.axes, c.settings_hash, c.dataset, c.mask, c.model, c.seed,
         s.metric, AVG(s.value) AS mean, COUNT(s.value) AS count,
         CASE WHEN COUNT(s.value) > 1
              THEN (SUM(s.value * s.value) - COUNT(s.value) * AVG(s.value) * AVG(s.value))
                   / (COUNT(s.value) - 1) END AS variance,
         MIN(s.value) AS min, MAX(s.value) AS max
  FROM score s JOIN sample p ON p.id = s.sample_id JOIN cell c ON c.id = p.cell_id
  WHERE p.status = 'ok' GROUP BY c.id, s.metric;
CREATE VIEW image_best AS
  SELECT p.cell_id, p.image_index, s.metric,
         CASE WHEN MAX(s.higher_is_better) = 1 THEN MAX(s.value) ELSE MIN(s.value) END AS best,
         COUNT(s.value) AS samples
  FROM score s JOIN sample p ON p.id = s.sample_id WHERE p.status = 'ok'
  GROUP BY p.cell_id, p.image_index, s.metric;
CREATE VIEW cell_best AS
  SELECT cell_id, metric, AVG(best) AS best_mean, COUNT(best) AS images
  FROM image_best GROUP BY cell_id, metric;
INSERT INTO experiment VALUES (1, 'old', 'copaint.G = 1,2
copaint.lr_xt = 0.05
name = old
samples = 2
', 'c0ffee0000000001', 'abc', '2.1.0', 'no', 'cpu (2 threads); model gaussian', '',
  '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'finished');
INSERT INTO cell VALUES (1, '00112233445566aa', 0, 'copaint', 'G = 2
lr_xt = 0.05
use_tt = false
', 'aa00000000000001', 'G=2', 'fashion_mnist', 'count = 8
split = test
', 'half', '', 'gaussian', 'image_size = 8
', 0, 0);
INSERT INTO sample VALUES (1, 1, 0, 'img0', 0, 1, 0.5, 10, 0, 1234, 'ok', '', 'results.h5',
  '/samples/00112233445566aa/0_0', '/references/x/0', '/masks/half-x/0');
INSERT INTO sample VALUES (2, 1, 1, 'img1', 0, 1, 0.5, 10, 0, 1234, 'ok', '', 'results.h5',
  '/samples/00112233445566aa/1_0', '/references/x/1', '/masks/half-x/1');
INSERT INTO score VALUES (1, 'psnr', 20.5, 1);
INSERT INTO score VALUES (2, 'psnr', 21.5, 1);
PRAGMA user_version = 1;
)SQL";

TEST_F(ResultsSchema, AVersion1DatabaseIsMigratedOnOpen) {
  const fs::path dir = temp_dir("migrate");
  const std::string path = (dir / "results.sqlite").string();
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(raw, kSchemaV1, nullptr, nullptr, &err), SQLITE_OK) << err;
    sqlite3_close(raw);
  }
  {
    ResultsDb db(path, false);
    EXPECT_EQ(db.schema_version(), 4);
    // Texts, keys and hashes as they were: old results still resume.
    const auto cells = db.cells();
    ASSERT_EQ(cells.size(), 1u);
    EXPECT_EQ(cells[0].key, "00112233445566aa");
    EXPECT_EQ(cells[0].settings, "G = 2\nlr_xt = 0.05\nuse_tt = false\n");
    EXPECT_EQ(cells[0].settings_hash, "aa00000000000001");
    EXPECT_EQ(cells[0].axes, "G=2");
    EXPECT_EQ(db.runs()[0].config_hash, "c0ffee0000000001");
    // Typed JSON.
    EXPECT_EQ(db.query_text("SELECT json_extract(settings_json, '$.G') FROM cell"), "2");
    EXPECT_EQ(db.query_text("SELECT typeof(json_extract(settings_json, '$.G')) FROM cell"),
              "integer");
    EXPECT_EQ(db.query_text("SELECT typeof(json_extract(settings_json, '$.lr_xt')) FROM cell"),
              "real");
    EXPECT_EQ(db.query_text("SELECT json_extract(settings_json, '$.use_tt') FROM cell"), "0");
    EXPECT_EQ(db.query_text("SELECT json_type(settings_json, '$.use_tt') FROM cell"), "false");
    EXPECT_EQ(db.query_text("SELECT variant_json FROM cell"), "{\"G\":2}");
    EXPECT_EQ(db.query_text("SELECT json_extract(dataset_settings_json, '$.count') FROM cell"),
              "8");
    EXPECT_EQ(db.query_text("SELECT mask_settings_json FROM cell"), "{}");
    EXPECT_EQ(db.query_text("SELECT json_extract(config_json, '$.copaint.G') FROM experiment"),
              "[1,2]");
    // Renamed columns and the views over them.
    EXPECT_EQ(db.query_text("SELECT variant FROM cell"), "G=2");
    EXPECT_EQ(db.query_text("SELECT SUM(peak_memory_bytes) FROM sample"), "2468");
    EXPECT_EQ(db.samples()[0].peak_memory, 1234);
    EXPECT_EQ(db.query_text("SELECT variant || ' ' || mean FROM cell_metric"), "G=2 21.0");
    EXPECT_EQ(db.query_text("SELECT images FROM cell_best"), "2");
    EXPECT_EQ(db.query_text("SELECT COUNT(*) FROM score_long WHERE json_extract(settings_json, "
                            "'$.G') = 2 AND metric = 'psnr'"),
              "2");
    // New rows go in beside the old ones.
    RunRecord r;
    r.name = "old";
    r.config = "name = old\n";
    r.config_hash = "c0ffee0000000001";
    r.host = "node1";
    r.threads = 4;
    const int64_t id = db.add_run(r);
    EXPECT_EQ(db.runs().back().id, id);
    EXPECT_EQ(db.runs().back().host, "node1");
    EXPECT_EQ(db.runs().back().threads, 4);
    // Version 4: old rows have no non-finite gradient count (NULL, not 0); new rows keep theirs.
    EXPECT_EQ(db.samples()[0].nonfinite_grads, -1);
    SampleRecord counted;
    counted.cell_id = cells[0].id;
    counted.image_index = 2;
    counted.image_id = "img2";
    counted.status = "ok";
    counted.nonfinite_grads = 3;
    SampleRecord checked = counted;
    checked.image_index = 3;
    checked.nonfinite_grads = 0;
    db.write_samples({counted, checked});
    EXPECT_EQ(db.query_text("SELECT group_concat(COALESCE(nonfinite_grads, 'null'), ',') FROM "
                            "(SELECT nonfinite_grads FROM sample ORDER BY image_index)"),
              "null,null,3,0");
    EXPECT_EQ(db.samples()[2].nonfinite_grads, 3);
  }
  // Opening again is a no-op.
  ResultsDb again(path, false);
  EXPECT_EQ(again.schema_version(), 4);
  EXPECT_EQ(again.cells().size(), 1u);
  fs::remove_all(dir);
}

// A results folder written by the binary before schema version 2 (tests/fixtures/results_v1):
// migrated on open, and a rerun of its experiment resumes it with nothing left to run.
TEST_F(ResultsSchema, ResultsWrittenBeforeVersion2ResumeAfterTheMigration) {
  const fs::path fixture = fs::path(COPAINT_TEST_FIXTURES_DIR) / "results_v1";
  const fs::path dir = temp_dir("fixture_v1");
  for (const char* f : {"results.sqlite", "results.h5"}) fs::copy_file(fixture / f, dir / f);
  // Only the copaint cells: blended's share_forward_noise (added after the fixture was written,
  // then kept out of keys at its default by the methods' keyed_at_default) changed its key since.
  const Experiment ex = load_experiment((fixture / "v1.ini").string(), {"methods=copaint"});
  ASSERT_EQ(ex.cells.size(), 2u);
  {
    ResultsDb db((dir / "results.sqlite").string(), false);
    EXPECT_EQ(db.schema_version(), 4);
    const auto cells = db.cells();
    ASSERT_EQ(cells.size(), 3u);
    for (size_t i = 0; i < ex.cells.size(); ++i) {
      EXPECT_EQ(cells[i].key, ex.cells[i].key());
      EXPECT_EQ(cells[i].settings, ex.cells[i].method_settings.canonical());
    }
    EXPECT_EQ(db.query_text("SELECT group_concat(variant_json, ' ') FROM cell"),
              "{\"G\":1} {\"G\":2} {}");
    EXPECT_EQ(db.query_text("SELECT json_extract(settings_json, '$.lr_xt') FROM cell WHERE id = 1"),
              "0.05");
    EXPECT_EQ(db.query_text("SELECT json_extract(config_json, '$.copaint.G') FROM experiment "
                            "ORDER BY id DESC LIMIT 1"),
              "[1,2]");
  }
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    GTEST_SKIP() << "no Fashion-MNIST (Debian's dataset-fashion-mnist) to rerun the fixture with";
  }
  RunOptions o;
  o.out_dir = dir.string();
  o.device = "cpu";
  // The rows have no input hashes (schema 3): the resume checks them against the references and
  // masks stored for them, which still are the dataset's.
  EXPECT_EQ(ResultsDb((dir / "results.sqlite").string(), false)
                .query_text("SELECT COUNT(*) FROM sample WHERE image_sha256 IS NULL"),
            "6");
  const RunSummary s = run_experiment(ex, o);
  EXPECT_EQ(s.selected, 4);
  EXPECT_EQ(s.skipped, 4);
  EXPECT_EQ(s.mismatched, 0);
  EXPECT_EQ(s.ok, 0);
  fs::remove_all(dir);
}

TEST_F(ResultsSchema, RunsStoreTypedSettingsAndTheirEnvironment) {
  const fs::path dir = temp_dir("run");
  const Experiment ex = parse_experiment(kExperiment, "schema.ini");
  RunOptions o;
  o.out_dir = dir.string();
  o.device = "cpu";
  ::setenv("SLURM_JOB_ID", "4242", 1);
  ::setenv("SLURM_ARRAY_TASK_ID", "1", 1);
  const RunSummary s = run_experiment(ex, o);
  ::unsetenv("SLURM_JOB_ID");
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  EXPECT_EQ(s.ok, 12);
  ResultsDb db(s.paths.db, true);
  EXPECT_EQ(db.schema_version(), 4);
  const auto cells = db.cells();
  ASSERT_EQ(cells.size(), 4u);
  for (size_t i = 0; i < cells.size(); ++i) {
    EXPECT_EQ(cells[i].key, ex.cells[i].key());  // keys and texts as before
    EXPECT_EQ(cells[i].settings, ex.cells[i].method_settings.canonical());
  }
  EXPECT_EQ(db.query_text("SELECT group_concat(json_extract(variant_json, '$.G')) FROM cell"),
            "1,1,2,2");
  EXPECT_EQ(db.query_text("SELECT typeof(json_extract(settings_json, '$.flag')) FROM cell"),
            "integer");  // SQLite reads JSON false as 0
  EXPECT_EQ(db.query_text("SELECT json_type(settings_json, '$.flag') FROM cell"), "false");
  EXPECT_EQ(db.query_text("SELECT json_extract(config_json, '$.gaussian.std') FROM experiment"),
            "0.6");
  const auto runs = db.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].device_type, "cpu");
  EXPECT_GT(runs[0].threads, 0);
  EXPECT_FALSE(runs[0].host.empty());
  EXPECT_EQ(runs[0].slurm_job_id, "4242");
  EXPECT_EQ(runs[0].slurm_array_task_id, "1");
  EXPECT_EQ(runs[0].slurm_array_job_id, "");
  EXPECT_EQ(runs[0].command_line.rfind("[\"", 0), 0u) << runs[0].command_line;
  EXPECT_EQ(runs[0].model_description.find("gaussian") == std::string::npos, false)
      << runs[0].model_description;
  EXPECT_EQ(db.query_text("SELECT COUNT(*) FROM score_long"), "12");
  fs::remove_all(dir);
}

TEST_F(ResultsSchema, ConfigFilesAreLayeredInOrderThenSet) {
  const fs::path dir = temp_dir("layers");
  const std::string ini = write_file(dir / "exp.ini", kExperiment);
  const std::string site =
      write_file(dir / "site.ini", "[gaussian]\nstd = 0.5\n[schema_signal]\nG = 3\n");
  const std::string site2 =
      write_file(dir / "site2.ini", "# later wins\nschema_synthetic.count = 2\n");
  const Experiment ex = load_experiment(ini, {site, site2}, {"gaussian.std=0.25"});
  EXPECT_EQ(ex.name, "schema");    // the experiment file's own name
  EXPECT_EQ(ex.cells.size(), 2u);  // G = 3 only, x 2 masks
  EXPECT_EQ(ex.cells[0].method_settings.get("G"), "3");
  EXPECT_EQ(ex.model_settings.get("std"), "0.25");
  EXPECT_EQ(ex.dataset_settings.at("schema_synthetic").get("count"), "2");
  EXPECT_EQ(ex.origin.at("schema_synthetic.count"), site2 + ":2");
  EXPECT_EQ(ex.origin.at("schema_signal.G"), site + ":4");
  EXPECT_EQ(ex.origin.at("gaussian.std"), "--set gaussian.std");
  // An error in a layered file names that file and line.
  const std::string bad = write_file(dir / "bad.ini", "\n[gaussian]\nnot_an_option = 1\n");
  try {
    load_experiment(ini, {bad}, {});
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(bad + ":3"), std::string::npos) << e.what();
  }
  // The command line: `run EXP.ini --config site.ini --set k=v`.
  std::ostringstream out, err;
  ASSERT_EQ(
      run_cli({"run", ini, "--config", site, "--config", site2, "--set", "masks=half", "--dry-run"},
              out, err),
      0)
      << err.str();
  EXPECT_NE(out.str().find("-> 1 cells"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("schema_synthetic: 2 images"), std::string::npos) << out.str();
  EXPECT_EQ(
      run_cli({"run", ini, "--config", (dir / "missing.ini").string(), "--dry-run"}, out, err), 1);
  fs::remove_all(dir);
}

TEST_F(ResultsSchema, GlobalOptionsAreAcceptedAfterTheSubcommand) {
  const fs::path dir = temp_dir("global");
  const std::string ini = write_file(dir / "exp.ini", kExperiment);
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"run", ini, "--out", (dir / "r").string(), "--device", "cpu", "--quiet",
                     "--threads", "1", "--log-level=warn", "--set", "masks=half"},
                    out, err),
            0)
      << err.str();
  EXPECT_NE(out.str().find("6 run now (6 ok"), std::string::npos) << out.str();
  std::ostringstream err2;
  EXPECT_EQ(run_cli({"run", ini, "--dry-run", "--device", "tpu"}, out, err2), 2);
  EXPECT_NE(err2.str().find("tpu"), std::string::npos) << err2.str();
  // report's own --precision (digits) stays report's.
  std::ostringstream rep;
  ASSERT_EQ(run_cli({"report", (dir / "r").string(), "--precision", "1", "-q"}, rep, err), 0)
      << err.str();
  EXPECT_NE(rep.str().find("psnr"), std::string::npos);
  // --precision after run is the global one: refused by name for the analytic model.
  std::ostringstream perr;
  EXPECT_EQ(run_cli({"run", ini, "--dry-run", "--precision", "bf16"}, out, perr), 2);
  EXPECT_NE(perr.str().find("gaussian.precision"), std::string::npos) << perr.str();
  fs::remove_all(dir);
}

TEST_F(ResultsSchema, ProgressLinesWithoutATerminal) {
  const fs::path dir = temp_dir("progress");
  const Experiment ex = parse_experiment(kExperiment, "schema.ini");
  RunOptions o;
  o.out_dir = dir.string();
  o.device = "cpu";
  o.progress_seconds = 1e-9;       // a line after every batch
  set_log_level(LogLevel::kInfo);  // other tests' --quiet stays set in this process
  ::testing::internal::CaptureStderr();
  run_experiment(ex, o);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("progress: 2/12 samples (16.7%), "), std::string::npos) << log;
  EXPECT_NE(log.find("samples/s, elapsed 0:00:"), std::string::npos) << log;
  EXPECT_NE(log.find(", ETA 0:00:"), std::string::npos) << log;
  EXPECT_NE(log.find("; schema_signal [G=2] / line"), std::string::npos) << log;
  EXPECT_NE(log.find("progress: 12/12 samples (100.0%)"), std::string::npos) << log;
  EXPECT_NE(log.find("; finished"), std::string::npos) << log;
  fs::remove_all(dir);
}

TEST_F(ResultsSchema, SigtermStopsCleanlyAfterTheBatchInProgress) {
  const fs::path dir = temp_dir("sigterm");
  const std::string ini = write_file(dir / "exp.ini", kExperiment);
  // The method raises SIGTERM in its first batch: that batch is stored, the run stops.
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"run", ini, "--out", (dir / "r").string(), "--device", "cpu", "--set",
                     "schema_signal.signal=15", "-q"},
                    out, err),
            128 + SIGTERM)
      << err.str();
  EXPECT_NE(out.str().find("2 run now (2 ok, 0 errors)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("(stopped early)"), std::string::npos) << out.str();
  {
    ResultsDb db((dir / "r" / "results.sqlite").string(), false);
    EXPECT_EQ(db.samples().size(), 2u);
    EXPECT_EQ(db.runs().back().status, "stopped");
  }
  // The previous handler is back (the default one; not called here).
  struct sigaction now {};
  sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  // The rerun resumes (the signal setting is the cell's, so it is raised again, but the rerun's
  // first batch, image 2 of the first cell, is stored before it stops once more).
  EXPECT_EQ(run_cli({"run", ini, "--out", (dir / "r").string(), "--device", "cpu", "--set",
                     "schema_signal.signal=15", "-q"},
                    out, err),
            128 + SIGTERM);
  EXPECT_EQ(ResultsDb((dir / "r" / "results.sqlite").string(), false).samples().size(), 3u);
  fs::remove_all(dir);
}

TEST(ResultsDb, HoldsResultsTablesOnlyOnceTheSchemaExists) {
  const fs::path dir = fs::temp_directory_path() / ("copaint_holds_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string empty = (dir / "empty.sqlite").string(), real = (dir / "real.sqlite").string();
  std::ofstream(empty).close();  // what a run killed before creating its tables leaves
  EXPECT_FALSE(holds_results_tables(empty));
  EXPECT_FALSE(holds_results_tables((dir / "absent.sqlite").string()));
  { ResultsDb db(real, true); }
  EXPECT_TRUE(holds_results_tables(real));
  EXPECT_THROW(ResultsDb(empty, false), InputError);  // and the database itself still refuses it
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
