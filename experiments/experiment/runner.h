// The experiment runner: plans an experiment's work (cells x images x samples, sharded,
// skipping what is stored) and runs it batch by batch into the SQLite and HDF5 results.
//
// Results of experiment <name> go to a folder (default results/<name>/): results.sqlite and
// results.h5, or, for shard i of n, results.shard-i-of-n.sqlite and results.shard-i-of-n.h5.
// Shards never share a file: HDF5 has no safe concurrent writers, so each shard writes its own
// pair and `copaint merge` (merge.h) combines them; `copaint report` also reads them directly.
//
// Reproducibility: sample j of image i in a cell with seed s draws all its randomness from a CPU
// generator seeded with experiment_sample_seed(s, i, j) = (s * 1000003 + i) * 1000003 + j (the
// generator `copaint inpaint --seed (s * 1000003 + i)` gives its sample j; the runner lets the
// method draw x_T itself, so the two agree for methods whose first draw is x_T: all but dps,
// resample and ddrm with sigma_0 > 0); so results do not depend on how samples are packed into
// batches, on batch_size, on sharding or on resuming (except for settings that couple a batch on
// purpose, such as copaint.batch_coupled or dps.batch_norm).
//
// Crash safety: a batch's images are written to HDF5 and flushed before its sample rows (and
// scores) are committed to SQLite in one transaction; a sample counts as done only once its row
// is committed, so killing the process loses at most the batch in progress (its HDF5 datasets
// are rewritten by the rerun). The HDF5 file is opened for each batch and closed after it, so
// it is only open for writing while a batch is being stored.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "experiments/experiment/experiment.h"
#include "experiments/store/results_db.h"

namespace copaint {

/// The runner's test hooks, in one place (`run --stop-after`, `--crash-after`; the fault
/// injection of every write is framework/core/atomic_file.h's COPAINT_FAULT_POINT).
struct RunTestHooks {
  /// Return (as if interrupted) once at least this many samples were stored; -1 = off.
  int64_t stop_after = -1;
  /// Once at least this many samples are in HDF5, terminate the process with
  /// std::_Exit(kCrashExitCode) before committing them to SQLite; -1 = off.
  int64_t crash_after = -1;
};

/// How to run an experiment.
struct RunOptions {
  std::string out_dir;      ///< results folder; empty = results/<name>
  int64_t shard_index = 0;  ///< this process runs work items whose index % shard_count == it
  int64_t shard_count = 1;
  bool retry_failed = false;  ///< rerun samples stored with status error (default: skip them)
  bool force = false;         ///< recompute samples already stored (rows and images replaced)
  /// Also store each sample as float32 (/samples_float/..., the sample's attribute float_path):
  /// the output exactly as scored, so rescoring from the file reproduces the stored scores.
  bool float_samples = false;
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  /// Without a terminal on stderr (a SLURM log, a pipe): a progress line every this many
  /// seconds (done/total, rate, elapsed, ETA) and one at the end; <= 0 = none.
  double progress_seconds = 60;
  /// Progress as those lines even on a terminal (the workers of `run --jobs`, whose bars
  /// would overwrite each other; the caller turns the bar off).
  bool progress_lines = false;
  /// SIGTERM or SIGINT (a time limit, preemption, Ctrl-C) stops the run cleanly after the batch in
  /// progress is stored (status `stopped`; a rerun resumes). The handlers are restored after.
  bool handle_signals = true;
  RunTestHooks testing;  ///< off in normal runs
};

constexpr int kCrashExitCode = 86;

/// The files of one shard (or of the unsharded run) in `dir`.
struct ResultPaths {
  std::string dir;
  std::string db;  ///< dir/results.sqlite or dir/results.shard-i-of-n.sqlite
  std::string h5;  ///< the same with .h5
};
ResultPaths result_paths(const std::string& dir, int64_t shard_index, int64_t shard_count);

/// The default results folder of an experiment: results/<name>.
std::string default_results_dir(const Experiment& ex);

/// Parses "i/n" (0 <= i < n); throws UsageError otherwise.
void parse_shard(const std::string& text, int64_t* index, int64_t* count);

/// The generator seed of sample `sample_index` of image `image_index` in a cell with `seed`.
uint64_t experiment_sample_seed(int64_t seed, int64_t image_index, int64_t sample_index);

/// What a cell holds for this shard.
struct CellPlan {
  int64_t cell = 0;      ///< index into Experiment::cells
  int64_t images = -1;   ///< images of its dataset (-1 = unknown)
  int64_t selected = 0;  ///< samples this shard is responsible for
  int64_t done = 0;      ///< of those, stored and skipped (ok, or error unless retried)
  int64_t forwards_per_sample = 0;
};

/// The whole grid for this shard.
struct GridPlan {
  std::vector<CellPlan> cells;
  std::map<std::string, int64_t> images;     ///< per dataset (-1 = unknown)
  std::map<std::string, std::string> notes;  ///< per dataset: why the count is estimated
  std::vector<std::string> warnings;         ///< what a run would fail on (masks, checkpoint, ...)
  bool images_known = true;
  int64_t selected = 0, done = 0;
  int64_t pending_forwards = 0;  ///< sum over pending samples of forwards_per_sample
  int64_t total_forwards = 0;    ///< the same over every selected sample
};

/// Plans without running: opens the datasets when it can (else uses their `count` option), builds
/// the masks and checks that a `checkpoint` setting of the model names a file (warnings, not
/// errors), and reads the results database when it exists to count what is done. Loads no model.
GridPlan plan_experiment(const Experiment& ex, const RunOptions& options);

/// Prints the plan: one line per cell, then totals in samples and UNet evaluations.
void print_plan(const Experiment& ex, const GridPlan& plan, std::ostream& out);

/// What a run did.
struct RunSummary {
  int64_t selected = 0;        ///< samples this shard is responsible for
  int64_t skipped = 0;         ///< already stored (and still belonging to their input)
  int64_t mismatched = 0;      ///< stored, but for an input that changed since: recomputed
  int64_t rescored = 0;        ///< stored samples scored now for metrics they lacked
  int64_t set_scores = 0;      ///< (cell, set metric) scores computed now (set_scores.h)
  int64_t ok = 0, errors = 0;  ///< run now
  bool stopped = false;        ///< stop_after or a signal ended the run early
  int stop_signal = 0;         ///< the signal that stopped it (SIGTERM, SIGINT), else 0
  double seconds = 0;
  ResultPaths paths;
};

/// Runs the experiment: loads the model, datasets, masks and metrics first (so a missing
/// checkpoint or bad file fails before any work), then every pending sample, cell by cell, in
/// batches of Experiment::batch_size. A batch whose method throws is rerun sample by sample; a
/// sample that still throws is stored with status error and its message, and the run goes on.
/// Images are read when first needed: one that cannot be read (Dataset::get throws, e.g. a
/// corrupt file) or has the wrong shape is skipped with a warning, every sample of it is stored
/// with status error and the reason ("... image I skipped (cannot be used): ..."), and the run
/// goes on; a rerun skips those rows like other errors (--retry-failed tries the image again).
/// Only when the first readable image of a dataset does not fit the model does the run fail
/// before any work. Resuming: a stored sample counts only while its input (image id, image and
/// mask hashes, framework/core/input_hash.h) is unchanged, else it is recomputed; stored samples
/// lacking a metric of the experiment are scored from their stored images; every run stores the
/// fingerprint of each (dataset, mask) input set (experiments/README.md, "Resume"). At the end
/// (unless stopped), each metric over a set scores every complete cell (set_scores.h).
RunSummary run_experiment(const Experiment& ex, const RunOptions& options);

/// Now in UTC as ISO 8601 ("2026-12-01T20:41:14Z"): the started / finished times of stored runs.
std::string utc_timestamp();

// Naming of what a cell stores, shared by `run` and `score` (results_db.h, results_h5.h).
/// HDF5 group of a dataset's reference images: its name and the hash of its settings without
/// `count` (adding images keeps stored ones valid).
std::string dataset_key(const std::string& name, const Options& settings);
/// HDF5 group of a cell's masks at h x w: mask name, settings, mask seed and size.
std::string mask_key(const ExperimentCell& cell, int64_t h, int64_t w);
/// The cell's row as the runner stores it (key, grid position, settings texts, variant label).
CellRecord cell_record(const ExperimentCell& cell);

}  // namespace copaint
