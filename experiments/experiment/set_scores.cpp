// Metrics over a set in the results: complete cells, cached features, one score per cell.
#include "experiments/experiment/set_scores.h"

#include <chrono>
#include <filesystem>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "experiments/experiment/runner.h"
#include "experiments/store/file_lock.h"
#include "experiments/store/results_h5.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/sha256.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

/// One stored image a score uses: where it is and the SHA-256 of its uint8 pixels.
struct StoredImage {
  std::string h5_file, path, sha256;
};

/// The images of one complete cell: samples in (image, sample) order, references by image.
struct CellImages {
  std::vector<StoredImage> samples, references;
};

/// The results' HDF5 files, opened for reading once each.
class H5Files {
 public:
  explicit H5Files(std::string dir) : dir_(std::move(dir)) {}
  ResultsH5& at(const std::string& name) {
    std::unique_ptr<ResultsH5>& f = files_[name];
    if (!f)
      f = std::make_unique<ResultsH5>((fs::path(dir_) / name).string(), ResultsH5::Mode::kRead);
    return *f;
  }
  at::Tensor uint8(const StoredImage& im) { return at(im.h5_file).read_uint8(im.path); }

 private:
  std::string dir_;
  std::map<std::string, std::unique_ptr<ResultsH5>> files_;
};

/// The promised samples of a cell when every one is stored ok (false otherwise): rows beyond
/// the promise (images since removed) are left out.
bool complete_cell(const std::map<std::pair<int64_t, int64_t>, SampleRecord>& rows, int64_t images,
                   int64_t samples, std::vector<const SampleRecord*>* out) {
  if (images <= 0) return false;
  for (int64_t i = 0; i < images; ++i) {
    for (int64_t s = 0; s < samples; ++s) {
      auto it = rows.find({i, s});
      if (it == rows.end() || it->second.status != "ok" || it->second.sample_path.empty())
        return false;
      out->push_back(&it->second);
    }
  }
  return true;
}

/// The stored images of a complete cell, hashed (samples read to hash them; a reference's hash
/// is its row's image_sha256, which hashes the same bytes, or read where the row has none).
CellImages cell_images(const std::vector<const SampleRecord*>& rows, H5Files& files) {
  CellImages c;
  std::set<int64_t> seen;
  for (const SampleRecord* r : rows) {
    StoredImage s{r->h5_file, r->sample_path, ""};
    s.sha256 = uint8_sha256(files.uint8(s));
    c.samples.push_back(s);
    if (!seen.insert(r->image_index).second) continue;
    StoredImage ref{r->h5_file, r->reference_path, r->image_sha256};
    if (ref.sha256.empty()) ref.sha256 = uint8_sha256(files.uint8(ref));
    c.references.push_back(ref);
  }
  return c;
}

/// SHA-256 of what a score depends on: the feature key and the images, in order.
std::string inputs_digest(const std::string& feature_key, const CellImages& c) {
  std::ostringstream text;
  text << feature_key << "\nsamples\n";
  for (const auto& s : c.samples) text << s.sha256 << "\n";
  text << "references\n";
  for (const auto& r : c.references) text << r.sha256 << "\n";
  return sha256_hex(text.str());
}

/// [N, D] float64 features of `images` in order: cached ones from the database, the others
/// computed in batches (and cached).
at::Tensor features_of(SetMetric& metric, const std::vector<StoredImage>& images, ResultsDb& db,
                       H5Files& files, const SetScoreRequest& req, SetScoreSummary& summary) {
  const std::string key = metric.feature_key();
  std::vector<std::string> shas;
  for (const auto& im : images) shas.push_back(im.sha256);
  std::map<std::string, std::vector<double>> cache = db.features(key, shas);
  std::vector<const StoredImage*> todo;
  std::set<std::string> queued;
  for (const auto& im : images) {
    if (!cache.count(im.sha256) && queued.insert(im.sha256).second) todo.push_back(&im);
  }
  summary.cached += static_cast<int64_t>(images.size() - todo.size());
  std::map<std::string, std::vector<double>> computed;
  const auto t0 = std::chrono::steady_clock::now();
  at::NoGradGuard no_grad;
  for (size_t b = 0; b < todo.size(); b += static_cast<size_t>(req.batch_size)) {
    const size_t e = std::min(todo.size(), b + static_cast<size_t>(req.batch_size));
    std::vector<at::Tensor> batch;
    for (size_t k = b; k < e; ++k) batch.push_back(uint8_to_image(files.uint8(*todo[k])));
    const at::Tensor f =
        metric.features(at::stack(batch).to(req.device)).to(at::kCPU, at::kDouble).contiguous();
    if (f.dim() != 2 || f.size(0) != static_cast<int64_t>(e - b))
      throw InputError(metric.name() + ": features() returned a tensor of the wrong shape");
    for (size_t k = b; k < e; ++k) {
      const double* p = f[static_cast<int64_t>(k - b)].data_ptr<double>();
      computed[todo[k]->sha256] = std::vector<double>(p, p + f.size(1));
    }
  }
  summary.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  summary.featurised += static_cast<int64_t>(computed.size());
  db.write_features(key, computed);
  cache.insert(computed.begin(), computed.end());
  std::vector<at::Tensor> rows;
  for (const auto& im : images) {
    const std::vector<double>& v = cache.at(im.sha256);
    rows.push_back(
        at::from_blob(const_cast<double*>(v.data()), {static_cast<int64_t>(v.size())}, at::kDouble)
            .clone());
  }
  return at::stack(rows);
}

/// Scores one complete cell with one metric unless its stored score is still valid.
void score_cell(ResultsDb& db, const CellRecord& cell, const CellImages& images, SetMetric& metric,
                const std::map<std::pair<int64_t, std::string>, SetScoreRecord>& stored,
                H5Files& files, const SetScoreRequest& req, SetScoreSummary& summary) {
  const std::string digest = inputs_digest(metric.feature_key(), images);
  auto it = stored.find({cell.id, metric.name()});
  if (it != stored.end() && it->second.inputs_sha256 == digest) {
    ++summary.unchanged;
    return;
  }
  const at::Tensor s = features_of(metric, images.samples, db, files, req, summary);
  const at::Tensor r = features_of(metric, images.references, db, files, req, summary);
  const SetScore score = metric.score(s, r);
  SetScoreRecord rec;
  rec.cell_id = cell.id;
  rec.metric = metric.name();
  rec.value = score.value;
  rec.stddev = score.stddev;
  rec.higher_is_better = metric.higher_is_better();
  rec.n_samples = score.n_samples;
  rec.n_references = score.n_references;
  rec.note = score.note;
  rec.feature_key = metric.feature_key();
  rec.inputs_sha256 = digest;
  rec.run_id = req.run_id;
  rec.computed = utc_timestamp();
  db.write_set_score(rec);
  ++summary.scored;
}

}  // namespace

std::vector<std::unique_ptr<SetMetric>> open_set_metrics(const Experiment& ex) {
  std::vector<std::unique_ptr<SetMetric>> out;
  for (const auto& name : ex.set_metrics) {
    try {
      out.push_back(Registry<SetMetric>::global().at(name).factory(ex.metric_settings.at(name)));
    } catch (const UsageError& e) {
      throw UsageError(ex.where({name + ".weights", "metrics"}) + ": " + e.what());
    } catch (const InputError& e) {
      throw InputError(ex.where({name + ".weights", "metrics"}) + ": " + e.what());
    }
  }
  return out;
}

SetScoreSummary update_set_scores(ResultsDb& db, const SetScoreRequest& req,
                                  const std::vector<std::unique_ptr<SetMetric>>& metrics) {
  SetScoreSummary summary;
  if (metrics.empty()) return summary;
  std::map<std::pair<int64_t, std::string>, SetScoreRecord> stored;
  for (auto& r : db.set_scores()) stored[{r.cell_id, r.metric}] = r;
  H5Files files(req.dir);
  for (const CellRecord& cell : db.cells()) {
    if (!req.cell_keys.empty() && !req.cell_keys.count(cell.key)) continue;
    auto images = req.images.find(cell.dataset);
    if (images == req.images.end()) continue;
    const auto rows = db.sample_rows(cell.id);
    std::vector<const SampleRecord*> promised;
    if (!complete_cell(rows, images->second, req.samples, &promised)) {
      ++summary.incomplete;
      for (const auto& m : metrics) {
        if (stored.count({cell.id, m->name()})) db.drop_set_score(cell.id, m->name());
      }
      continue;
    }
    // A cell whose images cannot be read back (a damaged results.h5) or that a metric cannot
    // score is warned about and left unscored; the other cells go on.
    try {
      const CellImages images_of_cell = cell_images(promised, files);
      for (const auto& m : metrics)
        score_cell(db, cell, images_of_cell, *m, stored, files, req, summary);
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      log_warn("set metrics: cell " + cell.method + " / " + cell.mask + " / seed " +
               std::to_string(cell.seed) + " not scored: " + e.what());
    }
  }
  if (summary.scored > 0 || summary.featurised > 0) {
    log_info("set metrics: " + std::to_string(summary.scored) + " cell score(s) computed, " +
             std::to_string(summary.unchanged) + " unchanged, " +
             std::to_string(summary.incomplete) + " cell(s) incomplete; features of " +
             std::to_string(summary.featurised) + " image(s) computed (" +
             std::to_string(summary.seconds) + " s), " + std::to_string(summary.cached) +
             " from the cache");
  }
  return summary;
}

SetScoreSummary update_set_scores_after_merge(const std::string& db_path,
                                              const std::string& device) {
  FileLock lock(results_lock_path(db_path),
                "another `copaint run` or `copaint merge` is writing these results");
  ResultsDb db(db_path, false);
  const std::vector<RunRecord> runs = db.runs();
  // The latest configuration of a `run` (a `score` run's adds its score.NAME line).
  std::string config;
  for (auto it = runs.rbegin(); it != runs.rend() && config.empty(); ++it) {
    if (it->config.find("\nscore.") == std::string::npos) config = it->config;
  }
  if (config.find("metrics = ") == std::string::npos) return {};
  try {
    const Experiment ex = parse_experiment(config, db_path);
    if (ex.set_metrics.empty()) return {};
    SetScoreRequest req;
    req.dir = fs::path(db_path).parent_path().string();
    for (const auto& set : db.input_sets())
      req.images[set.dataset] = std::max(req.images[set.dataset], set.images);
    req.samples = ex.samples;
    req.device = parse_device(device);
    return update_set_scores(db, req, open_set_metrics(ex));
  } catch (const std::exception& e) {
    log_warn("set metrics not computed after the merge: " + std::string(e.what()));
    return {};
  }
}

}  // namespace copaint
