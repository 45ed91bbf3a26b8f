// Methods outside this program, scored beside ours: `copaint export-inputs` writes an
// experiment's inputs (reference images, masks, masked images, per-sample seeds, a manifest) in a
// plain folder layout, and `copaint score` scores a folder of predicted images in the same layout
// with the experiment's metrics and stores them in its results under a method name, so that
// `report`, plots and grids compare them with the built-in methods.
//
// Layout (the official CoPaint code's `<outdir>/<image_name>/samples/<00000>.png` convention,
// with outdir = <dataset>/<mask>):
//   DIR/<dataset>/<mask>/<image>/gt.png       the reference image
//   DIR/<dataset>/<mask>/<image>/mask.png     255 = known pixel, 0 = to inpaint
//   DIR/<dataset>/<mask>/<image>/masked.png   the reference with the hole grey (128)
//   DIR/manifest.csv, DIR/manifest.json       one row per (dataset, mask, seed, image, sample);
//                                             manifest.json's "inputs": per (dataset, mask) the
//                                             input-set fingerprint and each image's SHA-256s
//                                             (framework/core/input_hash.h), as `run` stores them
// Predictions: PRED/<dataset>/<mask>/<image>/samples/<k:05>.png with k = seed position x
// samples + sample index (k = the sample index for one seed); PRED/<mask>/<image>/samples/... and
// PRED/<image>/samples/... are accepted when the experiment has one dataset (and one mask), so
// the reference's own output folder (images/<algorithm>/<dataset>/) scores as it is.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "experiments/experiment/experiment.h"

namespace copaint {

/// The folder name of an image id ('/' and other unsafe characters become '_').
std::string image_folder_name(const std::string& image_id);

/// Writes the inputs of `ex` into `dir`; returns the number of (dataset, mask, image) folders.
int64_t export_inputs(const Experiment& ex, const std::string& dir);

struct ScoreOptions {
  std::string predictions;  ///< the predictions folder
  std::string name;         ///< method name to store them under
  Options settings;         ///< the method's settings (stored as its settings text)
  std::string out_dir;      ///< results folder; empty = results/<name of the experiment>
};

struct ScoreSummary {
  int64_t scored = 0;
  std::vector<std::string> missing;    ///< expected files that are not there
  std::vector<std::string> mis_sized;  ///< "file: HxWxC, expected HxWxC" (or unreadable)
  std::string db;                      ///< the database written
  int64_t set_scores = 0;              ///< (cell, metric over a set) scores computed
};

/// Scores every prediction found with the experiment's metrics and stores it (sample rows and
/// images) under method `name`; missing and mis-sized predictions are listed and not stored.
/// First checks PRED/manifest.json's input fingerprints against the experiment's inputs now: a
/// differing set is an InputError naming the first differing image; a missing manifest (or one
/// without fingerprints) a warning. Metrics over a set score each of NAME's complete cells.
ScoreSummary score_predictions(const Experiment& ex, const ScoreOptions& options);

/// Turns one of the official code's YAML configs (configs/*.yaml) plus its command-line
/// overrides (`--optimize_xt.lr_xt 0.01`, `--ddim.schedule_params.use_timetravel`, given as
/// "key=value" or "key") into an experiment INI of ours; unknown keys are listed as comments.
std::string import_reference_config(const std::string& yaml_text,
                                    const std::vector<std::string>& overrides);

}  // namespace copaint
