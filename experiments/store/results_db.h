// The results database of an experiment (SQLite, WAL mode): the source of truth for what ran,
// with what configuration, and every sample's cost, status and scores.
//
// Tables: experiment (one row per `copaint run` invocation: name, resolved config text and hash,
// git revision, LibTorch version, CUDA, device, shard, start/end), cell (method, resolved
// settings and hash, dataset, mask, model, seed; unique by cell_key), sample (cell, image,
// sample index, seconds, forwards, backwards, peak device memory, status 'ok'|'error', error
// text, and where its images are in the HDF5 file; unique by (cell, image, sample)), score
// (sample, metric, value, direction). Views: cell_metric (mean, count, variance, min, max per
// cell and metric over ok samples), image_best (best score per cell, image and metric) and
// cell_best (its mean over images: the reference's best_mean). Schema version 3: each sample's
// input identity (image_sha256, mask_sha256: framework/core/input_hash.h) and the table
// input_set (one fingerprint per dataset and mask, as the latest run computed it). Version 4:
// sample.nonfinite_grads (gradient steps with a non-finite loss or gradient; NULL without
// gradients).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

struct sqlite3;

namespace copaint {

/// One invocation of `copaint run` (a row of the experiment table).
struct RunRecord {
  int64_t id = 0;
  std::string name;
  std::string config;  ///< resolved configuration text
  std::string config_hash;
  std::string git_revision;
  std::string torch_version;
  std::string cuda;      ///< "no" or what LibTorch reports
  std::string device;    ///< describe_device()
  std::string shard;     ///< "i/n", or "" when unsharded
  std::string started;   ///< ISO 8601 UTC
  std::string finished;  ///< "" while running or after a crash
  std::string status;    ///< running | finished | stopped
  // Schema version 2: the environment in separate columns (config_json is derived from config).
  std::string device_type;  ///< the device alone: "cpu", "cuda:0"
  int64_t threads = 0;      ///< LibTorch's CPU threads
  std::string host;
  std::string slurm_job_id, slurm_array_job_id, slurm_array_task_id;  ///< "" outside SLURM
  std::string command_line;       ///< JSON array of the process's arguments
  std::string model_description;  ///< Denoiser::describe()
};

/// A row of the cell table.
struct CellRecord {
  int64_t id = 0;
  std::string key;  ///< ExperimentCell::key()
  int64_t position = 0;
  std::string method;
  std::string settings;  ///< canonical text of the resolved method settings
  std::string settings_hash;
  std::string axes;  ///< "G=5" (the settings-axis values of the cell; column `variant`)
  std::string dataset, dataset_settings;
  std::string mask, mask_settings;
  std::string model, model_settings;
  int64_t seed = 0;
  int64_t mask_seed = 0;
};

struct ScoreRecord {
  std::string metric;
  double value = 0;  ///< NaN is stored as NULL and read back as NaN
  bool higher_is_better = true;
};

/// A row of the sample table with its scores.
struct SampleRecord {
  int64_t id = 0;
  int64_t cell_id = 0;
  int64_t image_index = 0;
  std::string image_id;
  int64_t sample_index = 0;
  int64_t run_id = 0;    ///< experiment row that produced it (0 = none, stored as NULL)
  double seconds = 0;    ///< the batch's wall time divided by its size
  int64_t forwards = 0;  ///< network evaluations the sample went through
  int64_t backwards = 0;
  int64_t peak_memory = 0;  ///< peak device bytes of its batch (0 on the CPU; peak_memory_bytes)
  std::string status;       ///< "ok" or "error"
  std::string error;
  std::string h5_file;  ///< the HDF5 file's name, relative to the database's folder
  std::string sample_path, reference_path, mask_path;  ///< datasets in it ("" on error)
  /// Schema version 3: the input the sample was computed from (framework/core/input_hash.h);
  /// "" in rows stored before, and image_sha256 "" for an image that could not be read.
  std::string image_sha256, mask_sha256;
  /// Schema version 4: the gradient steps whose loss or gradient was non-finite
  /// (methods/gradients.h); -1 (NULL) for methods without gradients and rows stored before.
  int64_t nonfinite_grads = -1;
  std::vector<ScoreRecord> scores;
};

/// A row of the input_set table: the fingerprint of the inputs of one (dataset, mask) pair of a
/// run's grid (input_set_fingerprint over its images in index order), keyed by the dataset's
/// and the mask's stored keys (the HDF5 groups /references/<dataset_key>, /masks/<mask_key>).
struct InputSetRecord {
  std::string dataset, dataset_key;
  std::string mask, mask_key;
  int64_t images = 0;      ///< images hashed (the dataset's size in that run)
  int64_t unreadable = 0;  ///< of those, images that could not be read
  std::string fingerprint;
  int64_t run_id = 0;  ///< the run that computed it (0 = none, stored as NULL)
};

/// What identifies a run across databases (ids differ between them): a merged file and its
/// shards hold the same run once each.
std::string run_identity(const RunRecord& run);

/// Whether `path` is an SQLite file with the results tables (false for an empty file, e.g. one
/// left by a run stopped before it created them, or for anything SQLite cannot open).
bool holds_results_tables(const std::string& path);

class ResultsDb {
 public:
  /// Opens `path`; `create` creates a missing file and the schema. WAL journal, foreign keys on,
  /// 30 s busy timeout. Throws InputError naming the file.
  ResultsDb(const std::string& path, bool create);
  ~ResultsDb();
  ResultsDb(const ResultsDb&) = delete;
  ResultsDb& operator=(const ResultsDb&) = delete;

  const std::string& path() const { return path_; }
  /// PRAGMA user_version: 4 once opened by this program (older files are migrated on open).
  int schema_version() const;

  /// Inserts an experiment row; returns its id.
  int64_t add_run(const RunRecord& run);
  /// Sets a run's end time and status.
  void finish_run(int64_t run_id, const std::string& finished, const std::string& status);

  /// The id of the cell with `cell.key`, inserting the cell when it is new.
  int64_t ensure_cell(const CellRecord& cell);

  /// Status of every stored sample of a cell: (image index, sample index) -> "ok" | "error".
  std::map<std::pair<int64_t, int64_t>, std::string> sample_status(int64_t cell_id) const;

  /// Every stored sample row of a cell with its scores: (image index, sample index) -> row.
  std::map<std::pair<int64_t, int64_t>, SampleRecord> sample_rows(int64_t cell_id) const;

  /// Writes the samples and their scores in one transaction; a sample already stored for the
  /// same (cell, image, sample) is replaced (its old scores dropped). Fills nothing back.
  void write_samples(const std::vector<SampleRecord>& samples);

  /// Sets image_sha256 and mask_sha256 of stored samples (by id), in one transaction: rows
  /// stored before schema version 3 once a resume has checked them.
  void set_input_hashes(const std::vector<SampleRecord>& rows);

  /// Adds (or replaces) scores of stored samples, (sample id, score) each, in one transaction.
  void add_scores(const std::vector<std::pair<int64_t, ScoreRecord>>& scores);

  /// Stores the fingerprint of an input set, replacing the one stored for its (dataset_key,
  /// mask_key).
  void write_input_set(const InputSetRecord& set);
  /// Every stored input set, ordered by dataset and mask key.
  std::vector<InputSetRecord> input_sets() const;

  std::vector<RunRecord> runs() const;
  std::vector<CellRecord> cells() const;
  /// Every sample with its scores, ordered by cell, image and sample index.
  std::vector<SampleRecord> samples() const;
  /// One sample by id; InputError when there is none.
  SampleRecord sample(int64_t id) const;

  /// Runs SQL that returns no rows (tests, maintenance).
  void exec(const std::string& sql);
  /// The first column of the first row of a query, as text ("" when no row).
  std::string query_text(const std::string& sql) const;

 private:
  /// Upgrades an older database to the current version, one transaction per step (idempotent).
  void migrate();
  /// The version-1 to 2 step (inside migrate's transaction).
  void migrate_v1_to_v2();
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace copaint
