// Reports over stored results: loading one or several result databases, the paper-style
// comparison tables (method variants x masks, one metric per table, mean and best-of-n),
// ablation tables over a method's settings axes, timing, and image exports.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "experiments/store/results_db.h"

namespace copaint {

/// Results read from one or several databases (shards, a merge), deduplicated.
struct ResultSet {
  std::vector<std::string> sources;  ///< database files read
  std::vector<RunRecord> runs;
  std::vector<CellRecord> cells;  ///< unique by key; CellRecord::id is the index in this vector
  /// Unique by (cell, image, sample); cell_id indexes `cells`; h5_file is a full path.
  std::vector<SampleRecord> samples;
  /// Input-set fingerprints (results_db.h), unique by (dataset_key, mask_key, fingerprint): a
  /// key with two fingerprints means its databases ran on different inputs.
  std::vector<InputSetRecord> input_sets;
  /// Scores of metrics over a set (FID, KID) per complete cell; cell_id indexes `cells`. A cell
  /// scored in several databases keeps the score of the most samples (then the first read).
  std::vector<SetScoreRecord> set_scores;
};

/// Whether `metric` (a configured or stored name) is a metric over a set: registered in
/// Registry<SetMetric> or holding a set score in `results`.
bool is_set_metric(const ResultSet& results, const std::string& metric);

/// Reads every database (an ok row wins over an error row of the same sample).
ResultSet load_results(const std::vector<std::string>& dbs);

/// A method with one resolved setting (rows of the tables).
struct Variant {
  std::string method;
  std::string settings_hash;
  std::string label;  ///< "copaint" or "copaint (G=5)" when the method has several variants
  std::map<std::string, std::string> varying;  ///< the settings that differ between its variants
};

/// The variants of a result set, in cell order, each with the keys that vary within its method.
std::vector<Variant> result_variants(const ResultSet& results);

/// The methods with several variants (the ablation tables and figures), in order of appearance.
std::vector<std::string> ablated_methods(const std::vector<Variant>& variants);

/// How a result set is laid out for tables, plots and grids: its variants, the index of each
/// (method, settings hash) among them, the (dataset, model) sections and the masks in order of
/// appearance. Cells of one model name with different model settings (e.g. precision=bf16 and
/// fp32 runs reported together) are separate sections, labelled with the settings that differ:
/// "adm (precision=bf16)".
struct ResultLayout {
  std::vector<Variant> variants;
  std::map<std::pair<std::string, std::string>, size_t> variant_of;
  std::vector<std::pair<std::string, std::string>> sections;  ///< (dataset, model label)
  std::vector<std::string> masks;
  /// (dataset, model, model settings) of a cell -> index into sections.
  std::map<std::tuple<std::string, std::string, std::string>, size_t> section_index;
  size_t section_of(const CellRecord& cell) const {
    return section_index.at({cell.dataset, cell.model, cell.model_settings});
  }
};
ResultLayout result_layout(const ResultSet& results);

/// What the grid of the stored runs promised, against what is stored: `report` marks every table
/// cell with fewer ok samples than promised (`[12/16]`), lists missing shards and cells, and
/// `--strict` fails on any of it.
struct Completeness {
  /// Per cell (CellRecord::id) with a known promise: images of its dataset x samples per image,
  /// and the seeds of the grid (cells that differ only by seed share a table cell).
  struct Promise {
    int64_t samples = 0;  ///< samples the grid promises this cell
    int64_t seeds = 1;    ///< seeds of its grid
  };
  std::map<int64_t, Promise> promised;
  std::map<int64_t, int64_t> ok;  ///< ok samples stored per cell
  /// "copaint [G=2] / half / seed 0: 1 of 4 samples" for every cell short of its promise.
  std::vector<std::string> short_cells;
  /// "blended / half / seed 0: 3 stored, 2 promised" for every cell holding more ok samples than
  /// its grid promises now: samples of images since removed from the dataset (or beyond a lowered
  /// `count`), which the tables still average in.
  std::vector<std::string> extra_cells;
  /// "copaint / half / seed 0: ssim 1 of 3 samples" for every cell whose ok samples do not all
  /// hold a score (not NaN) of each metric of its grid (a metric added after they ran).
  std::vector<std::string> short_metrics;
  std::vector<std::string> missing_shards;  ///< "results.shard-1-of-3.sqlite (shard 1/3)"
  int64_t missing_cells = 0;                ///< cells of the latest grid with no stored row
  int64_t grid_cells = 0;                   ///< cells of that grid
  std::vector<std::string> notes;           ///< how image counts were found when not opened
  /// ok samples of a grid with metrics that hold no score, or a NaN one (e.g. NaN weights).
  int64_t unscored = 0;
  bool incomplete() const {
    return !short_cells.empty() || !extra_cells.empty() || !short_metrics.empty() ||
           !missing_shards.empty() || missing_cells > 0 || unscored > 0;
  }
  /// One paragraph for people (empty when complete).
  std::string summary() const;
};

/// Reads the promise from each run's stored configuration (samples, seeds, datasets, methods,
/// masks and the settings axes; the method `copaint score --as NAME` stored counts as a method
/// of its grid), per metric of the grid's `metrics` too, opening each dataset to count its images
/// (else its `count` setting, else the images stored). Cells of no stored configuration get no
/// promise.
Completeness check_completeness(const ResultSet& results);

/// The metrics stored in `results`, in order of appearance.
std::vector<std::string> stored_metrics(const ResultSet& results);
/// The stored metrics that `wanted` selects (empty = all; matched as ReportOptions::metrics), in
/// the experiment's `metrics` order, then any others as they appear. Unknown names select nothing.
std::vector<std::string> selected_metrics(const ResultSet& results,
                                          const std::vector<std::string>& wanted);

struct ReportOptions {
  std::string format = "markdown";  ///< markdown | csv | latex
  /// Stored names, matched exactly (psnr does not select psnr_masked); a name that is not stored
  /// selects the names extending it (lpips: lpips_alex_v0.1); empty = all. Tables list metrics in
  /// the experiment's `metrics` order.
  std::vector<std::string> metrics;
  bool timing = false;          ///< add the timing table (markdown, latex)
  bool std = false;             ///< show the standard deviation (spread = "std")
  std::string spread = "none";  ///< none | std | ci95 (95% CI of the mean, Student t)
  /// metric: one table per metric (rows methods, columns masks; LaTeX `table`, a column wide);
  /// paper: one table per dataset and model as the paper's Table 1 (masks as column groups,
  /// metrics as sub-columns, methods as rows; LaTeX `table*`, a page wide).
  std::string layout = "metric";
  bool standalone = false;  ///< LaTeX: a complete document (article, booktabs, graphicx)
  int precision = 4;        ///< digits after the point
  /// Rows x columns of the comparison tables: "method x mask" (rows method variants, the
  /// default) or "mask x method" (rows masks, columns variants); spaces optional.
  std::string pivot = "method x mask";
};

/// Writes the report. LaTeX needs booktabs and graphicx (said in its first line; `standalone`
/// writes a complete article); tables shrink to the column or page width when wider; the best
/// value of each column is bold and the second underlined (by the metric's direction); names
/// are display names (CoPaint-TT, "PSNR (hole) $\uparrow$"). Best-of-n is shown only where an
/// image has several samples. Markdown/LaTeX: per dataset and model, one comparison table per
/// metric (rows method variants, columns masks, or the transpose with pivot "mask x method"; "mean
/// (best)" where mean is over all ok samples, seeds pooled, and best is the mean over images of
/// each image's best sample, the reference's best_mean), one ablation table per metric for each
/// method with several variants (rows the varying settings, plus seconds and forwards per sample),
/// and with `timing` a table of seconds, forwards and backwards per sample. CSV: one tidy row per
/// (dataset, model, metric, variant, mask) with samples, images, errors, mean, std, best_mean,
/// seconds/forwards/backwards per sample, ci95, and the samples promised (empty when unknown).
/// An unknown `metrics` name throws UsageError listing the stored metrics.
void write_report(const ResultSet& results, const ReportOptions& options, std::ostream& out);
/// Same with the completeness already checked (cells short of it are marked `[ok/promised]`).
void write_report(const ResultSet& results, const Completeness& completeness,
                  const ReportOptions& options, std::ostream& out);

/// Writes the stored sample `sample_id` of database `db` as a PNG (or any OpenCV format).
void export_sample(const std::string& db, int64_t sample_id, const std::string& out_path);

struct GridOptions {
  std::vector<int64_t> images;       ///< image indices (empty = the first 4 stored)
  std::vector<std::string> masks;    ///< empty = all
  std::vector<std::string> methods;  ///< method names or variant labels; empty = all
  int64_t sample_index = 0;
  int64_t seed = -1;  ///< -1 = the first seed stored
  int64_t tile = 0;   ///< tile side in pixels (0 = the image size, at least 96)
};

/// A labelled image grid: one row per (image, mask), columns reference, masked input and each
/// variant's sample; missing samples are dark grey. Returns the number of tiles drawn.
int64_t export_grid(const ResultSet& results, const GridOptions& options,
                    const std::string& out_path);

}  // namespace copaint
