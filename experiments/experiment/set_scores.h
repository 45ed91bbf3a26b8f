// Metrics over a set (metrics/set_metric.h: FID, KID) in the results: which cells are complete,
// their per-image features (cached in the database), and one score per complete cell.
//
// A cell is complete when every sample its grid promises (images of its dataset x samples per
// image) is stored with status ok. Its score uses those samples against the reference images of
// the same (dataset, mask, images): both read back from the results' HDF5 file as uint8 pixels
// (the bytes a PNG would hold, as pytorch-fid reads images from files), so `run`, a resume,
// `merge` and `score` compute the same score from the same stored images. Features are cached in
// the set_feature table by (SetMetric::feature_key(), SHA-256 of the uint8 pixels): a reference
// image is featurised once per key however many cells use it, and features made under another
// key (another network or weights file) are never used. The stored score records the SHA-256 of
// the images it used (inputs_sha256): a cell whose samples were recomputed since is scored again;
// a cell no longer complete loses its stored score.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "experiments/experiment/experiment.h"
#include "experiments/store/results_db.h"
#include "metrics/set_metric.h"

namespace copaint {

/// What a set metric is computed for.
struct SetScoreRequest {
  std::string dir;  ///< the database's folder (its rows name HDF5 files relative to it)
  /// Images each cell's dataset holds (a cell whose dataset is absent here is skipped).
  std::map<std::string, int64_t> images;
  int64_t samples = 1;              ///< samples per image the grid promises
  std::set<std::string> cell_keys;  ///< cells to consider (empty = every stored cell)
  c10::Device device = c10::Device(c10::kCPU);
  int64_t batch_size = 32;  ///< images per features() call
  int64_t run_id = 0;       ///< the run computing it (0 = a merge)
};

struct SetScoreSummary {
  int64_t scored = 0;      ///< (cell, metric) scores computed now
  int64_t unchanged = 0;   ///< stored scores still valid (same images, same feature key)
  int64_t incomplete = 0;  ///< cells not complete (no score; a stale one dropped)
  int64_t featurised = 0;  ///< images whose features were computed now
  int64_t cached = 0;      ///< images whose features came from the cache
  double seconds = 0;      ///< spent in features()
};

/// The set metrics of `ex` (their factories: a missing weights file fails here, naming the key).
std::vector<std::unique_ptr<SetMetric>> open_set_metrics(const Experiment& ex);

/// Scores every complete cell of `request` with each metric, reusing stored scores whose images
/// and feature key are unchanged; logs what it did.
SetScoreSummary update_set_scores(ResultsDb& db, const SetScoreRequest& request,
                                  const std::vector<std::unique_ptr<SetMetric>>& metrics);

/// After `copaint merge`: the set metrics of the latest configuration stored in `db_path` (with
/// its dataset sizes from the input_set table), over every cell of the merged database. Nothing
/// when that configuration has no set metric; a configuration or weights error is warned about
/// and leaves the scores out (the database is unchanged).
SetScoreSummary update_set_scores_after_merge(const std::string& db_path,
                                              const std::string& device = "cpu");

}  // namespace copaint
