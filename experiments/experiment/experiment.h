// Experiment files (experiments/*.ini): the keys of an experiment, the grid-axis rule, and the
// expansion of a file into the cells of its grid.
//
// An experiment is an INI file with the project's dotted keys (`[section]` headers prefix keys).
// Top-level keys:
//   name        results go to results/<name>/ (default: the file's stem)
//   model       one registered model (`copaint list models`)
//   dataset     a registered dataset, or a comma list of them (axis)
//   methods     comma list of registered methods (axis)
//   masks       comma list of registered masks (axis)
//   seeds       comma list of non-negative integers (axis; default 0)
//   samples     samples per image (default 1)
//   metrics     comma list of registered metrics (default none): per-sample ones (psnr, lpips)
//               and metrics over a set (fid, kid: metrics/set_metric.h, scored per complete cell)
//   batch_size  samples per network batch (default 8; 0 = every pending sample of a cell at once)
//   mask_seed   seed of the random masks (default 0; not an axis)
// Every other key is scoped by the name of the model, a dataset, a method, a mask or a metric of
// the experiment (`adm.num_channels = 32`, `fashion_mnist.count = 8`, `copaint.G = 2`,
// `lpips.backbone = alex`).
//
// The axis rule: a comma in the value of `dataset`, `methods`, `masks`, `seeds`, or of a method
// setting (`copaint.G = 1,2,5`) makes it a grid axis; a method's settings axes multiply that
// method's cells only. Every other value is taken literally, commas included
// (`adm.channel_mult = 1,2,2`, `adm.attention_resolutions = 16,8`). The grid is, in this order,
// datasets x methods (each x its settings axes) x masks x seeds, for the one model.
// Keys scoped by a registered name the experiment does not use (e.g. settings of a method left out
// of `methods`) are ignored, so `--set methods=copaint` works on a file that configures them all.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/options.h"

namespace copaint {

/// One cell of an experiment's grid: a method with one choice of its settings axes, on one
/// dataset, mask and seed.
struct ExperimentCell {
  int64_t index = 0;        ///< position in the grid
  std::string method;       ///< registered method name
  Options method_settings;  ///< every option of the method, defaults filled (unprefixed keys)
  std::vector<std::pair<std::string, std::string>> axes;  ///< this cell's settings-axis values
  std::string dataset;
  Options dataset_settings;  ///< resolved (defaults filled)
  std::string mask;
  Options mask_settings;  ///< resolved
  std::string model;
  Options model_settings;  ///< resolved
  int64_t seed = 0;
  int64_t mask_seed = 0;
  int64_t expected_forwards = 0;  ///< per sample (Method::expected_forwards; 0 = unknown)

  /// "G=5, lr_xt=0.01" (empty when the method has no settings axis).
  std::string axes_label() const;
  /// "copaint [G=5] / half / seed 0".
  std::string label() const;
  /// 16 hex digits hashing everything that determines the cell's samples: model, dataset (except
  /// its `count`, so adding images keeps the cell), mask (and mask_seed), method and seed.
  std::string key() const;
};

/// A parsed and validated experiment.
struct Experiment {
  std::string source;  ///< the file it came from (or the name given to parse_experiment)
  std::string name;
  std::string model;
  Options model_settings;  ///< resolved
  std::vector<std::string> datasets, methods, masks;
  std::vector<std::string> metrics;       ///< per-sample metrics (Registry<Metric>)
  std::vector<std::string> set_metrics;   ///< metrics over a set (Registry<SetMetric>)
  std::vector<std::string> metric_names;  ///< both, in the order `metrics` gave them
  std::map<std::string, Options> dataset_settings, mask_settings;  ///< resolved
  std::map<std::string, Options> metric_settings;  ///< resolved, of both kinds of metric
  std::vector<int64_t> seeds;
  int64_t samples = 1;
  int64_t batch_size = 8;
  int64_t mask_seed = 0;
  /// The resolved configuration: every top-level key and every option of every entry used, with
  /// defaults filled and axes kept as lists. Its canonical text and hash are stored with results.
  Options config;
  std::vector<ExperimentCell> cells;
  /// Where each key given by the file or --set came from: "file:line" or "--set key".
  std::map<std::string, std::string> origin;

  std::string config_text() const { return config.canonical(); }
  /// The origin of the first of `keys` that was given, else `source`.
  std::string where(const std::vector<std::string>& keys) const;
  std::string config_hash() const { return config.hash(); }
};

/// Samples per image above which `run` (the experiment's `samples`) and `inpaint --samples` need
/// --allow-large: a sane bound against typos (every sample of a batch is held in memory).
inline constexpr int64_t kMaxSamplesWithoutAllowLarge = 10000;

/// The top-level keys of an experiment file.
const std::vector<std::string>& experiment_top_level_keys();

/// Whether `key`'s value is a grid axis when it holds a comma (see the rule above).
bool is_axis_key(const std::string& key, const std::vector<std::string>& methods);

/// Reads, validates and expands an experiment file; `overrides` are `key=value` assignments (as
/// `--set` gives them) that win over the file. Fails before any work: a malformed file, an
/// unknown key or name, or a bad value throws UsageError/InputError naming `path:line` (or the
/// `--set` assignment).
Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides = {});

/// Same with layered configuration: `config_files` (e.g. a site's paths.ini) are read in order
/// over the experiment file (later wins), then `overrides` win over all of them. Messages name the
/// file and line that gave a key. `name` still defaults to the experiment file's stem.
Experiment load_experiment(const std::string& path, const std::vector<std::string>& config_files,
                           const std::vector<std::string>& overrides);

/// Same, from text; `source` names it in messages and is the default `name` (its stem).
Experiment parse_experiment(const std::string& text, const std::string& source,
                            const std::vector<std::string>& overrides = {});

/// An INI text layered over an experiment's own (`copaint run EXP.ini --config site.ini`).
struct ConfigLayer {
  std::string source;  ///< its file name (for messages)
  std::string text;
};

/// Same, with `layers` merged over `text` in order, then `overrides`.
Experiment parse_experiment(const std::string& text, const std::string& source,
                            const std::vector<ConfigLayer>& layers,
                            const std::vector<std::string>& overrides);

}  // namespace copaint
