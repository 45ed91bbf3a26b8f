// Resume trusts inputs only after checking them: each stored sample records its input (image
// id, SHA-256 of the decoded pixels and of the mask bits); a resume recomputes the samples whose
// input changed (a file inserted, renamed or replaced in a folder dataset, `count` changed), and
// scores metrics added since for the stored samples. Also: the input-set fingerprints the report
// prints, per-metric completeness (--strict), and `score --as` refusing a built-in method.
// Runs the analytic `gaussian` model with `blended` on 8x8 PNG folders.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>

#include <unistd.h>

#include <ATen/ATen.h>

#include "datasets/dataset.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/external.h"
#include "experiments/experiment/runner.h"
#include "experiments/imageio/image_io.h"
#include "experiments/report/report.h"
#include "experiments/store/merge.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_resume_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d / "images");
  return d;
}

/// Writes DIR/images/NAME.png with pixels drawn from `seed`.
void put_image(const fs::path& dir, const std::string& name, int seed) {
  at::manual_seed(seed);
  write_image((dir / "images" / (name + ".png")).string(), at::rand({3, 8, 8}).mul(2).sub(1));
}

/// blended on the folder DIR/images, 2 masks, 2 samples per image.
Experiment folder_experiment(const fs::path& dir, const std::string& metrics,
                             const std::string& extra = "",
                             const std::string& masks = "half, line") {
  register_all();
  return parse_experiment(
      "name = resume\nmodel = gaussian\ndataset = folder\nmethods = blended\n"
      "masks = " +
          masks + "\nsamples = 2\nbatch_size = 3\nmetrics = " + metrics +
          "\ngaussian.image_size = 8\nblended.respacing = 4\n"
          "folder.size = 8\nfolder.preprocess = none\nfolder.root = " +
          (dir / "images").string() + "\n" + extra,
      "resume.ini");
}

RunSummary run_into(const Experiment& ex, const fs::path& out, bool float_samples = false) {
  RunOptions o;
  o.device = "cpu";
  o.out_dir = out.string();
  o.float_samples = float_samples;
  o.progress_seconds = 0;
  return run_experiment(ex, o);
}

/// (mask, image index, sample index) -> (image id, scores) of the ok rows of a results folder.
struct Stored {
  std::string image_id, image_sha256, mask_sha256;
  std::map<std::string, double> scores;
};
using StoredRows = std::map<std::tuple<std::string, int64_t, int64_t>, Stored>;

StoredRows stored_rows(const fs::path& out) {
  const ResultSet rs = load_results({(out / "results.sqlite").string()});
  StoredRows rows;
  for (const auto& s : rs.samples) {
    EXPECT_EQ(s.status, "ok");
    Stored r{s.image_id, s.image_sha256, s.mask_sha256, {}};
    for (const auto& sc : s.scores) r.scores[sc.metric] = sc.value;
    rows[{rs.cells[s.cell_id].mask, s.image_index, s.sample_index}] = r;
  }
  return rows;
}

/// The resumed results equal those of a fresh run on the folder as it is now: same image at
/// every index, same hashes, same scores (the samples depend only on (seed, image, sample)).
void expect_as_fresh(const fs::path& dir, const Experiment& ex, const fs::path& resumed) {
  const fs::path fresh = dir / ("fresh" + std::to_string(::rand()));
  run_into(ex, fresh);
  const StoredRows a = stored_rows(resumed), b = stored_rows(fresh);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, rb] : b) {
    ASSERT_EQ(a.count(key), 1u) << std::get<1>(key);
    const Stored& ra = a.at(key);
    EXPECT_EQ(ra.image_id, rb.image_id) << "image " << std::get<1>(key);
    EXPECT_EQ(ra.image_sha256, rb.image_sha256);
    EXPECT_EQ(ra.mask_sha256, rb.mask_sha256);
    EXPECT_EQ(ra.scores, rb.scores) << "image " << std::get<1>(key);
  }
}

/// The hash of every stored row is that of the image the folder dataset gives at its index, and
/// the reference stored in results.h5 holds those pixels.
void expect_hashes_match_the_folder(const Experiment& ex, const fs::path& out) {
  const auto ds =
      Registry<Dataset>::global().at("folder").factory(ex.dataset_settings.at("folder"));
  const ResultSet rs = load_results({(out / "results.sqlite").string()});
  ResultsH5 h5((out / "results.h5").string(), ResultsH5::Mode::kRead);
  for (const auto& s : rs.samples) {
    const ImageItem item = ds->get(s.image_index);
    EXPECT_EQ(s.image_id, item.id);
    EXPECT_EQ(s.image_sha256, image_sha256(item.image));
    EXPECT_EQ(uint8_sha256(h5.read_uint8(s.reference_path)), s.image_sha256) << s.reference_path;
    EXPECT_EQ(mask_sha256(h5.read_mask(s.mask_path)), s.mask_sha256) << s.mask_path;
  }
}

TEST(ResumeInputs, AnImageInsertedBeforeTheOthersRecomputesTheShiftedSamples) {
  const fs::path dir = temp_dir("insert");
  for (int i = 1; i <= 3; ++i) put_image(dir, "img_" + std::to_string(i), i);
  const Experiment ex = folder_experiment(dir, "psnr");
  const RunSummary first = run_into(ex, dir / "r");
  EXPECT_EQ(first.ok, 12);     // 2 masks x 3 images x 2 samples
  put_image(dir, "img_0", 0);  // sorts first: every index now means another image
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.selected, 16);
  EXPECT_EQ(again.mismatched, 12);
  EXPECT_EQ(again.skipped, 0);
  EXPECT_EQ(again.ok, 16);
  expect_hashes_match_the_folder(ex, dir / "r");
  expect_as_fresh(dir, ex, dir / "r");
  // Nothing changed since: all trusted.
  const RunSummary third = run_into(ex, dir / "r");
  EXPECT_EQ(third.skipped, 16);
  EXPECT_EQ(third.mismatched, 0);
  EXPECT_EQ(third.ok, 0);
  fs::remove_all(dir);
}

TEST(ResumeInputs, ARenamedImageRecomputesOnlyTheIndicesThatMoved) {
  const fs::path dir = temp_dir("rename");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  run_into(ex, dir / "r");
  fs::rename(dir / "images" / "b.png", dir / "images" / "e.png");  // a, c, e
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.mismatched, 8);  // images 1 (b -> c) and 2 (c -> e), 2 masks x 2 samples
  EXPECT_EQ(again.skipped, 4);     // image 0 (a) kept
  EXPECT_EQ(again.ok, 8);
  expect_hashes_match_the_folder(ex, dir / "r");
  expect_as_fresh(dir, ex, dir / "r");
  fs::remove_all(dir);
}

TEST(ResumeInputs, ReplacedPixelsUnderTheSameNameAreRecomputed) {
  const fs::path dir = temp_dir("replace");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  run_into(ex, dir / "r");
  put_image(dir, "b", 99);  // same name, other pixels
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.mismatched, 4);
  EXPECT_EQ(again.skipped, 8);
  expect_hashes_match_the_folder(ex, dir / "r");  // the stored reference was rewritten too
  expect_as_fresh(dir, ex, dir / "r");
  fs::remove_all(dir);
}

TEST(ResumeInputs, ChangingCountKeepsWhatStillMatchesAndRecomputesTheRest) {
  const fs::path dir = temp_dir("count");
  for (const char* n : {"b", "c", "d"}) put_image(dir, n, n[0]);
  run_into(folder_experiment(dir, "psnr", "folder.count = 2\n"), dir / "r");  // b, c
  put_image(dir, "a", 'a');  // now a, b, c, d: count 3 is a, b, c
  const Experiment ex = folder_experiment(dir, "psnr", "folder.count = 3\n");
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.selected, 12);
  EXPECT_EQ(again.mismatched, 8);  // indices 0 (b -> a) and 1 (c -> b)
  EXPECT_EQ(again.ok, 12);
  expect_hashes_match_the_folder(ex, dir / "r");
  // Fewer images: what is stored still matches.
  const RunSummary fewer =
      run_into(folder_experiment(dir, "psnr", "folder.count = 2\n"), dir / "r");
  EXPECT_EQ(fewer.skipped, 8);
  EXPECT_EQ(fewer.mismatched, 0);
  fs::remove_all(dir);
}

// An image removed from the folder since its samples ran: the resume has nothing to run, the
// stored rows stay, and the report says the cells hold more than the grid now promises
// (marked [stored/promised], --strict fails) instead of averaging them in silently.
TEST(ResumeInputs, SamplesOfRemovedImagesAreFlagged) {
  const fs::path dir = temp_dir("removed");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  run_into(ex, dir / "r");
  ResultSet rs = load_results({(dir / "r" / "results.sqlite").string()});
  EXPECT_FALSE(check_completeness(rs).incomplete()) << check_completeness(rs).summary();
  fs::remove(dir / "images" / "c.png");
  const RunSummary again = run_into(folder_experiment(dir, "psnr"), dir / "r");
  EXPECT_EQ(again.skipped, 8);  // a and b, 2 masks x 2 samples: nothing to run
  rs = load_results({(dir / "r" / "results.sqlite").string()});
  const Completeness done = check_completeness(rs);
  ASSERT_EQ(done.extra_cells.size(), 2u) << done.summary();  // half and line, seed 0
  EXPECT_EQ(done.extra_cells[0], "blended / half / seed 0: 6 stored, 4 promised");
  EXPECT_TRUE(done.incomplete());
  EXPECT_NE(done.summary().find("more ok samples than the grid now promises"), std::string::npos)
      << done.summary();
  fs::remove_all(dir);
}

// Rows stored before schema 3 have no hashes: they are checked against the reference stored
// for them in results.h5.
TEST(ResumeInputs, RowsWithoutHashesAreCheckedAgainstTheStoredReference) {
  const fs::path dir = temp_dir("nohash");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  const RunSummary first = run_into(ex, dir / "r");
  ResultsDb((first.paths.db), false)
      .exec("UPDATE sample SET image_sha256 = NULL, mask_sha256 = NULL");
  EXPECT_EQ(run_into(ex, dir / "r").skipped, 8);
  expect_hashes_match_the_folder(ex, dir / "r");  // checked, then stored
  put_image(dir, "a", 77);
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_EQ(again.mismatched, 4);
  expect_hashes_match_the_folder(ex, dir / "r");
  fs::remove_all(dir);
}

TEST(ResumeInputs, AMetricAddedOnResumeIsScoredForTheStoredSamples) {
  const fs::path dir = temp_dir("metric");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  // With float32 samples stored, the added metric is exactly a fresh run's.
  for (bool float_samples : {true, false}) {
    const fs::path out = dir / (float_samples ? "float" : "uint8");
    run_into(folder_experiment(dir, "psnr"), out, float_samples);
    const Experiment both = folder_experiment(dir, "psnr, ssim");
    const RunSummary again = run_into(both, out, float_samples);
    EXPECT_EQ(again.skipped, 8);
    EXPECT_EQ(again.ok, 0);
    EXPECT_EQ(again.rescored, 8);
    const fs::path fresh = dir / (float_samples ? "fresh_float" : "fresh_uint8");
    run_into(both, fresh, float_samples);
    const StoredRows a = stored_rows(out), b = stored_rows(fresh);
    ASSERT_EQ(a.size(), 8u);
    for (const auto& [key, rb] : b) {
      ASSERT_EQ(a.at(key).scores.count("ssim"), 1u);
      EXPECT_EQ(a.at(key).scores.at("psnr"), rb.scores.at("psnr"));
      if (float_samples) {
        EXPECT_NEAR(a.at(key).scores.at("ssim"), rb.scores.at("ssim"), 1e-6);
      } else {  // from the uint8 sample: within the rounding of the stored image
        EXPECT_NEAR(a.at(key).scores.at("ssim"), rb.scores.at("ssim"), 0.02);
      }
    }
    const ResultSet rs = load_results({(out / "results.sqlite").string()});
    EXPECT_FALSE(check_completeness(rs).incomplete()) << check_completeness(rs).summary();
    EXPECT_EQ(run_into(both, out).rescored, 0);  // nothing left to score
  }
  fs::remove_all(dir);
}

// A database whose samples lack a metric of its grid (written before the resume scored added
// metrics): the table marks that metric's cells with its own count, and --strict fails.
TEST(ResumeInputs, ReportCountsPromisedSamplesPerMetric) {
  const fs::path dir = temp_dir("strict");
  for (const char* n : {"a", "b"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr, ssim", "", "half");
  const RunSummary s = run_into(ex, dir / "r");
  EXPECT_EQ(s.ok, 4);
  ResultsDb(s.paths.db, false)
      .exec(
          "DELETE FROM score WHERE metric = 'ssim' AND sample_id IN "
          "(SELECT id FROM sample WHERE image_index = 1 OR sample_index = 1)");
  const ResultSet rs = load_results({s.paths.db});
  const Completeness done = check_completeness(rs);
  ASSERT_TRUE(done.incomplete());
  ASSERT_EQ(done.short_metrics.size(), 1u);
  EXPECT_EQ(done.short_metrics[0], "blended / half / seed 0: ssim 1 of 4 samples");
  EXPECT_TRUE(done.short_cells.empty());
  std::ostringstream md;
  write_report(rs, done, ReportOptions{}, md);
  EXPECT_NE(md.str().find("[1/4]"), std::string::npos) << md.str();
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"report", (dir / "r").string(), "--strict"}, out, err), 1) << err.str();
  EXPECT_NE(err.str().find("ssim 1 of 4 samples"), std::string::npos) << err.str();
  // A resume scores them; then the report is complete.
  EXPECT_EQ(run_into(ex, dir / "r").rescored, 3);
  EXPECT_EQ(run_cli({"report", (dir / "r").string(), "--strict"}, out, err), 0) << err.str();
  fs::remove_all(dir);
}

TEST(ResumeInputs, EveryRunStoresAndReportPrintsTheInputFingerprints) {
  const fs::path dir = temp_dir("fingerprint");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  const RunSummary s = run_into(ex, dir / "r");
  std::vector<InputSetRecord> sets = ResultsDb(s.paths.db, false).input_sets();
  ASSERT_EQ(sets.size(), 2u);  // folder x half, folder x line
  const ResultSet rs = load_results({s.paths.db});
  for (const auto& set : sets) {
    EXPECT_EQ(set.images, 3);
    EXPECT_EQ(set.unreadable, 0);
    // The fingerprint of the stored rows' hashes, in image order.
    std::vector<InputHash> items(3);
    for (const auto& r : rs.samples) {
      if (rs.cells[r.cell_id].mask == set.mask)
        items[r.image_index] = {r.image_sha256, r.mask_sha256};
    }
    EXPECT_EQ(set.fingerprint, input_set_fingerprint(items));
  }
  EXPECT_NE(sets[0].fingerprint, sets[1].fingerprint);
  std::ostringstream md;
  write_report(rs, ReportOptions{}, md);
  EXPECT_NE(md.str().find("sha256 " + sets[0].fingerprint), std::string::npos) << md.str();
  // The same pixels under other names: the same fingerprints; other pixels: others.
  const fs::path other = temp_dir("fingerprint_renamed");
  for (const char* n : {"a", "b", "c"}) {
    fs::copy_file(dir / "images" / (std::string(n) + ".png"),
                  other / "images" / ("x_" + std::string(n) + ".png"));
  }
  const RunSummary renamed = run_into(folder_experiment(other, "psnr"), other / "r");
  const auto renamed_sets = ResultsDb(renamed.paths.db, false).input_sets();
  ASSERT_EQ(renamed_sets.size(), 2u);
  EXPECT_EQ(renamed_sets[0].fingerprint, sets[0].fingerprint);
  put_image(dir, "c", 5);
  const RunSummary again = run_into(ex, dir / "r");
  EXPECT_NE(ResultsDb(again.paths.db, false).input_sets()[0].fingerprint, sets[0].fingerprint);
  fs::remove_all(dir);
  fs::remove_all(other);
}

// Each shard hashes the whole input set (shards agree); `copaint merge` carries the fingerprints
// and the rows' hashes.
TEST(ResumeInputs, ShardsAgreeOnFingerprintsAndMergeKeepsThem) {
  const fs::path dir = temp_dir("shards");
  for (const char* n : {"a", "b", "c"}) put_image(dir, n, n[0]);
  const Experiment ex = folder_experiment(dir, "psnr");
  const RunSummary whole = run_into(ex, dir / "whole");
  std::vector<std::string> shard_dbs;
  for (int64_t k = 0; k < 2; ++k) {
    RunOptions o;
    o.device = "cpu";
    o.out_dir = (dir / "sharded").string();
    o.shard_index = k;
    o.shard_count = 2;
    o.progress_seconds = 0;
    shard_dbs.push_back(run_experiment(ex, o).paths.db);
  }
  const auto expected = ResultsDb(whole.paths.db, false).input_sets();
  ASSERT_EQ(expected.size(), 2u);
  for (const auto& db : shard_dbs) {
    const auto sets = ResultsDb(db, false).input_sets();
    ASSERT_EQ(sets.size(), 2u);
    for (size_t k = 0; k < 2; ++k) EXPECT_EQ(sets[k].fingerprint, expected[k].fingerprint);
  }
  merge_results(shard_dbs, (dir / "merged").string());
  const auto merged = ResultsDb((dir / "merged" / "results.sqlite").string(), false).input_sets();
  ASSERT_EQ(merged.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(merged[k].fingerprint, expected[k].fingerprint);
    EXPECT_GT(merged[k].run_id, 0);  // mapped to the merged file's run rows
  }
  expect_hashes_match_the_folder(ex, dir / "merged");
  EXPECT_EQ(run_into(ex, dir / "merged").skipped, 12);
  fs::remove_all(dir);
}

TEST(ResumeInputs, ScoreRefusesABuiltInMethodsName) {
  const fs::path dir = temp_dir("score_as");
  put_image(dir, "a", 1);
  const Experiment ex = folder_experiment(dir, "psnr");
  ScoreOptions o;
  o.predictions = dir.string();
  o.out_dir = (dir / "r").string();
  for (const char* name : {"blended", "copaint"}) {
    o.name = name;
    try {
      score_predictions(ex, o);
      ADD_FAILURE() << name << " accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("built-in method"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(dir / "r" / "results.sqlite"));  // refused before anything is written
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
