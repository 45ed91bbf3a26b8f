// export-inputs and score: an experiment's inputs as plain files, and predicted images scored
// into its results.
#include "experiments/experiment/external.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <tuple>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/experiment/runner.h"
#include "experiments/experiment/sample_images.h"
#include "experiments/experiment/set_scores.h"
#include "experiments/imageio/image_io.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/version.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "metrics/metric.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

/// The distinct (dataset, mask, seed) inputs of an experiment's grid, each with one of its cells.
std::vector<const ExperimentCell*> input_cells(const Experiment& ex) {
  std::vector<const ExperimentCell*> out;
  std::set<std::tuple<std::string, std::string, std::string, int64_t, int64_t>> seen;
  for (const auto& c : ex.cells) {
    const auto key =
        std::make_tuple(c.dataset, c.dataset_settings.canonical(),
                        c.mask + "\n" + c.mask_settings.canonical(), c.mask_seed, c.seed);
    if (seen.insert(key).second) out.push_back(&c);
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string sample_file(int64_t k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%05lld.png", static_cast<long long>(k));
  return buf;
}

/// Each seed's position in the experiment's list: prediction k = position x samples + sample.
std::map<int64_t, int64_t> seed_positions(const Experiment& ex) {
  std::map<int64_t, int64_t> seed_pos;
  for (size_t k = 0; k < ex.seeds.size(); ++k) seed_pos[ex.seeds[k]] = static_cast<int64_t>(k);
  return seed_pos;
}

/// Opened datasets and masks of an experiment, and their images (cached).
struct Inputs {
  const Experiment& ex;
  std::map<std::string, std::unique_ptr<Dataset>> datasets;
  std::map<std::string, std::unique_ptr<MaskGenerator>> masks;
  std::map<std::pair<std::string, int64_t>, ImageItem> items;
  explicit Inputs(const Experiment& e) : ex(e) {
    for (const auto& name : ex.datasets) {
      datasets[name] = Registry<Dataset>::global().at(name).factory(ex.dataset_settings.at(name));
    }
    for (const auto& name : ex.masks) {
      masks[name] = Registry<MaskGenerator>::global().at(name).factory(ex.mask_settings.at(name));
    }
  }
  int64_t size(const std::string& ds) { return datasets.at(ds)->size(); }
  const ImageItem& item(const std::string& ds, int64_t i) {
    auto key = std::make_pair(ds, i);
    auto it = items.find(key);
    if (it == items.end()) it = items.emplace(key, datasets.at(ds)->get(i)).first;
    return it->second;
  }
  at::Tensor mask(const ExperimentCell& c, int64_t i) {
    const at::Tensor& img = item(c.dataset, i).image;
    return masks.at(c.mask)
        ->make(img.size(1), img.size(2), i, static_cast<uint64_t>(c.mask_seed))
        .to(at::kFloat)
        .contiguous();
  }
};

/// The hashes of one (dataset, mask) input set of the grid (framework/core/input_hash.h).
struct InputSetHashes {
  std::string dataset, mask, dataset_key, mask_key;
  std::vector<std::string> ids;
  std::vector<InputHash> items;
  std::string fingerprint;
};

/// Every (dataset, mask) input set of the grid, hashed as `run` hashes and stores them.
std::vector<InputSetHashes> input_set_hashes(const Experiment& ex, Inputs& in) {
  std::vector<InputSetHashes> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const ExperimentCell* c : input_cells(ex)) {
    InputSetHashes h;
    h.dataset = c->dataset;
    h.mask = c->mask;
    h.dataset_key = dataset_key(c->dataset, c->dataset_settings);
    for (int64_t i = 0; i < in.size(c->dataset); ++i) {
      const ImageItem& item = in.item(c->dataset, i);
      if (h.mask_key.empty()) h.mask_key = mask_key(*c, item.image.size(1), item.image.size(2));
      h.ids.push_back(item.id);
      h.items.push_back({image_sha256(item.image), mask_sha256(in.mask(*c, i))});
    }
    if (!seen.insert({h.dataset_key, h.mask_key}).second) continue;
    h.fingerprint = input_set_fingerprint(h.items);
    out.push_back(std::move(h));
  }
  return out;
}

/// The manifest's "inputs": per (dataset, mask) its fingerprint and each image's hashes.
std::string inputs_json(const std::vector<InputSetHashes>& sets) {
  std::ostringstream js;
  js << "[";
  for (size_t k = 0; k < sets.size(); ++k) {
    const InputSetHashes& h = sets[k];
    js << (k ? ",\n" : "\n") << "    {\"dataset\": " << json_string(h.dataset)
       << ", \"mask\": " << json_string(h.mask)
       << ", \"dataset_key\": " << json_string(h.dataset_key)
       << ", \"mask_key\": " << json_string(h.mask_key) << ", \"images\": " << h.items.size()
       << ", \"fingerprint\": " << json_string(h.fingerprint) << ", \"items\": [";
    for (size_t i = 0; i < h.items.size(); ++i) {
      js << (i ? ",\n" : "\n") << "      {\"image_index\": " << i
         << ", \"image_id\": " << json_string(h.ids[i])
         << ", \"image_sha256\": " << json_string(h.items[i].image)
         << ", \"mask_sha256\": " << json_string(h.items[i].mask) << "}";
    }
    js << "]}";
  }
  return js.str() + "\n  ]";
}

/// The first difference between an input set of the manifest and the experiment's now ("" when
/// they are the same): the image count, or the first image whose id or hashes differ.
std::string first_difference(const nlohmann::json& m, const InputSetHashes& now) {
  const nlohmann::json& items = m.at("items");
  const size_t n = std::min(items.size(), now.items.size());
  for (size_t i = 0; i < n; ++i) {
    const nlohmann::json& it = items[i];
    const std::string id = it.value("image_id", "");
    const std::string where = "image " + std::to_string(i) + " ('" + now.ids[i] + "')";
    if (id != now.ids[i]) return where + " is '" + id + "' in the manifest";
    if (it.value("image_sha256", "") != now.items[i].image)
      return where + ": pixels differ (sha256 " + it.value("image_sha256", "") +
             " in the manifest, " + now.items[i].image + " now)";
    if (it.value("mask_sha256", "") != now.items[i].mask)
      return where + ": mask differs (sha256 " + it.value("mask_sha256", "") +
             " in the manifest, " + now.items[i].mask + " now)";
  }
  if (items.size() != now.items.size())
    return std::to_string(items.size()) + " images in the manifest, " +
           std::to_string(now.items.size()) + " now";
  if (m.value("fingerprint", "") != now.fingerprint) return "fingerprint differs";
  return "";
}

/// Checks the predictions' manifest.json (written by export-inputs) against the experiment's
/// inputs now: a differing input set is an InputError naming the first differing image (the
/// predictions were made from other inputs: their scores would not be comparable); no manifest,
/// or one without fingerprints (an older export), is a warning.
void check_manifest(const Experiment& ex, Inputs& in, const std::string& predictions) {
  const fs::path file = fs::path(predictions) / "manifest.json";
  if (!fs::is_regular_file(file)) {
    log_warn("score: no manifest.json in '" + predictions +
             "': the inputs the predictions were made from are not checked");
    return;
  }
  nlohmann::json manifest;
  try {
    std::ifstream f(file);
    manifest = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw InputError("score: '" + file.string() + "' is not valid JSON: " + e.what());
  }
  if (!manifest.contains("inputs")) {
    log_warn("score: '" + file.string() +
             "' has no input fingerprints (an export before they were added): inputs not checked");
    return;
  }
  for (const InputSetHashes& now : input_set_hashes(ex, in)) {
    const nlohmann::json* found = nullptr;
    for (const auto& m : manifest.at("inputs")) {
      if (m.value("dataset", "") == now.dataset && m.value("mask", "") == now.mask) found = &m;
    }
    if (!found) {
      throw InputError("score: '" + file.string() + "' has no inputs for " + now.dataset + " x " +
                       now.mask + ": the predictions were exported for another grid");
    }
    const std::string diff = first_difference(*found, now);
    if (!diff.empty()) {
      throw InputError("score: the predictions' inputs differ from the experiment's (" +
                       file.string() + ", " + now.dataset + " x " + now.mask + "): " + diff);
    }
  }
}

/// An exclusive lock on the results database while scores are written.
class Lock {
 public:
  explicit Lock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0) throw InputError("cannot create lock file '" + path + "'");
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw InputError("'" + path + "' is locked: a `copaint run` is writing these results");
    }
  }
  ~Lock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  int fd_ = -1;
};

std::string shape_text(const at::Tensor& t) {
  std::string s;
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "x" : "") + std::to_string(t.size(d));
  return s;
}

/// The experiment row of a `copaint score` run (status running).
RunRecord score_run_record(const Experiment& ex, const ScoreOptions& o) {
  RunRecord run;
  run.name = ex.name;
  run.config = ex.config_text() + "score." + o.name + " = " + o.predictions + "\n";
  run.config_hash = ex.config_hash();
  run.device = "copaint score --predictions " + o.predictions + " --as " + o.name;
  run.cuda = "no";
  run.git_revision = git_revision();
  run.started = utc_timestamp();
  run.status = "running";
  return run;
}

/// What scoring a cell needs: the experiment's inputs and metrics, and where the scores go.
struct ScoreContext {
  const Experiment& ex;
  const ScoreOptions& o;
  Inputs& in;
  const std::vector<std::unique_ptr<Metric>>& metrics;
  const ResultPaths& paths;
  ResultsDb& db;
  int64_t run_id = 0;
  std::map<int64_t, int64_t> seed_pos;
};

/// A cell's usable predictions: their rows (scores to come) and images.
struct CellPredictions {
  std::vector<SampleRecord> records;
  std::vector<at::Tensor> preds, refs, masks;
};

/// The file of a prediction: the full layout, or without the dataset (one dataset), or without
/// both (one mask too); empty when none is there (the full layout's path listed as missing).
fs::path find_prediction(const ScoreContext& sc, const ExperimentCell& cell,
                         const std::string& file, ScoreSummary& summary) {
  const fs::path pred(sc.o.predictions);
  std::vector<fs::path> candidates = {pred / cell.dataset / cell.mask / file};
  if (sc.ex.datasets.size() == 1) candidates.push_back(pred / cell.mask / file);
  if (sc.ex.datasets.size() == 1 && sc.ex.masks.size() == 1) candidates.push_back(pred / file);
  const auto found = std::find_if(candidates.begin(), candidates.end(),
                                  [](const fs::path& p) { return fs::is_regular_file(p); });
  if (found != candidates.end()) return *found;
  summary.missing.push_back(candidates.front().string());
  return fs::path();
}

/// A prediction's image, or undefined when it is unreadable or its shape is not the
/// reference's (listed as unusable).
at::Tensor read_prediction(const fs::path& file, const at::Tensor& reference,
                           ScoreSummary& summary) {
  at::Tensor image;
  try {
    image = read_image(file.string(), reference.size(0));
  } catch (const std::exception& e) {
    summary.mis_sized.push_back(file.string() + ": unreadable (" + e.what() + ")");
    return at::Tensor();
  }
  if (!image.sizes().equals(reference.sizes())) {
    summary.mis_sized.push_back(file.string() + ": " + shape_text(image) + ", expected " +
                                shape_text(reference) + " (CxHxW)");
    return at::Tensor();
  }
  return image;
}

/// The row of sample s of image i, with the paths `run` uses, so that a run's references and
/// masks are shared, not copied.
SampleRecord prediction_record(const ScoreContext& sc, const ExperimentCell& cell,
                               const CellRecord& cr, int64_t cell_id, const ImageItem& item,
                               int64_t i, int64_t s) {
  SampleRecord r;
  r.cell_id = cell_id;
  r.image_index = i;
  r.image_id = item.id;
  r.sample_index = s;
  r.run_id = sc.run_id;
  r.status = "ok";
  r.h5_file = fs::path(sc.paths.h5).filename().string();
  r.reference_path =
      "/references/" + dataset_key(cell.dataset, cell.dataset_settings) + "/" + std::to_string(i);
  r.mask_path =
      "/masks/" + mask_key(cell, item.image.size(1), item.image.size(2)) + "/" + std::to_string(i);
  r.sample_path = "/samples/" + cr.key + "/" + std::to_string(i) + "_" + std::to_string(s);
  return r;
}

/// Every prediction of a cell that is there and fits, in image and sample order.
CellPredictions collect_predictions(ScoreContext& sc, const ExperimentCell& cell,
                                    const CellRecord& cr, int64_t cell_id, ScoreSummary& summary) {
  CellPredictions c;
  for (int64_t i = 0; i < sc.in.size(cell.dataset); ++i) {
    const ImageItem& item = sc.in.item(cell.dataset, i);
    const std::string folder = image_folder_name(item.id);
    for (int64_t s = 0; s < sc.ex.samples; ++s) {
      const std::string file =
          folder + "/samples/" + sample_file(sc.seed_pos.at(cell.seed) * sc.ex.samples + s);
      const fs::path found = find_prediction(sc, cell, file, summary);
      if (found.empty()) continue;
      const at::Tensor image = read_prediction(found, item.image, summary);
      if (!image.defined()) continue;
      c.records.push_back(prediction_record(sc, cell, cr, cell_id, item, i, s));
      c.preds.push_back(image);
      c.refs.push_back(item.image);
      c.masks.push_back(sc.in.mask(cell, i));
      c.records.back().image_sha256 = image_sha256(item.image);
      c.records.back().mask_sha256 = mask_sha256(c.masks.back());
    }
  }
  return c;
}

/// Scores the predictions with each metric; a metric that fails (other than on configuration)
/// is warned about and left out.
void score_cell_predictions(const ScoreContext& sc, const ExperimentCell& cell,
                            CellPredictions& c) {
  const at::Tensor p = at::stack(c.preds), ref = at::stack(c.refs), m = at::stack(c.masks);
  for (auto& metric : sc.metrics) {
    at::Tensor v;
    try {
      v = metric->score(p, ref, m).to(at::kCPU, at::kDouble).contiguous();
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      log_warn(sc.o.name + " / " + cell.mask + ": metric " + metric->name() +
               " not scored: " + e.what());
      continue;
    }
    for (size_t k = 0; k < c.records.size(); ++k) {
      c.records[k].scores.push_back(
          {metric->name(), v[static_cast<int64_t>(k)].item<double>(), metric->higher_is_better()});
    }
  }
}

/// Stores the images in HDF5 (the file closed: a full disk is an error before the rows are
/// committed), then the rows in one transaction.
void store_cell_predictions(ScoreContext& sc, const ExperimentCell& cell,
                            const CellPredictions& c) {
  {
    ResultsH5 h5(sc.paths.h5, ResultsH5::Mode::kWrite);
    for (size_t k = 0; k < c.records.size(); ++k) {
      store_sample_images(h5, cell, c.records[k], c.refs[k], c.masks[k], c.preds[k],
                          /*generator_seed=*/-1);
    }
    h5.close();
  }
  sc.db.write_samples(c.records);
}

/// Scores and stores the predictions of one grid input as a cell of method o.name, stored as
/// `run` stores a cell, at `position` (after the grid); returns the cell's key.
std::string score_cell(ScoreContext& sc, const ExperimentCell& grid_cell, int64_t position,
                       ScoreSummary& summary) {
  ExperimentCell cell = grid_cell;
  cell.method = sc.o.name;
  cell.method_settings = sc.o.settings;
  cell.axes.clear();
  CellRecord cr = cell_record(cell);
  cr.position = position;
  const int64_t cell_id = sc.db.ensure_cell(cr);
  CellPredictions c = collect_predictions(sc, cell, cr, cell_id, summary);
  if (c.records.empty()) return cr.key;
  score_cell_predictions(sc, cell, c);
  store_cell_predictions(sc, cell, c);
  summary.scored += static_cast<int64_t>(c.records.size());
  return cr.key;
}

}  // namespace

std::string image_folder_name(const std::string& image_id) {
  std::string out;
  for (char c : image_id) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    out += keep ? c : '_';
  }
  // A file name such as 000123.jpg names its folder without the extension, as the reference.
  const auto dot = out.rfind('.');
  if (dot != std::string::npos && dot > 0) out = out.substr(0, dot);
  return out.empty() ? "_" : out;
}

int64_t export_inputs(const Experiment& ex, const std::string& dir) {
  Inputs in(ex);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw InputError("cannot create folder '" + dir + "'");
  std::ostringstream csv;  // the manifests are written atomically once every image is
  csv << "dataset,mask,seed,image_index,image_id,sample_index,sample_seed,gt,mask_file,masked,"
         "prediction\n";
  std::ostringstream items;
  int64_t folders = 0;
  std::set<std::string> written;
  const std::vector<const ExperimentCell*> cells = input_cells(ex);
  // Prediction numbering: seed position x samples + sample index.
  const std::map<int64_t, int64_t> seed_pos = seed_positions(ex);
  bool first = true;
  for (const ExperimentCell* c : cells) {
    for (int64_t i = 0; i < in.size(c->dataset); ++i) {
      const ImageItem& item = in.item(c->dataset, i);
      const std::string rel = c->dataset + "/" + c->mask + "/" + image_folder_name(item.id);
      if (written.insert(rel).second) {
        fs::create_directories(fs::path(dir) / rel / "samples", ec);
        const at::Tensor m = in.mask(*c, i);
        write_image((fs::path(dir) / rel / "gt.png").string(), item.image);
        write_mask((fs::path(dir) / rel / "mask.png").string(), m);
        const at::Tensor masked =
            at::where(m.gt(0.5).expand_as(item.image), item.image, at::zeros_like(item.image));
        write_image((fs::path(dir) / rel / "masked.png").string(), masked);
        ++folders;
      }
      for (int64_t s = 0; s < ex.samples; ++s) {
        const int64_t k = seed_pos.at(c->seed) * ex.samples + s;
        const uint64_t seed = experiment_sample_seed(c->seed, i, s);
        const std::string pred = rel + "/samples/" + sample_file(k);
        csv << csv_field(c->dataset) << "," << csv_field(c->mask) << "," << c->seed << "," << i
            << "," << csv_field(item.id) << "," << s << "," << seed << "," << rel << "/gt.png,"
            << rel << "/mask.png," << rel << "/masked.png," << pred << "\n";
        items << (first ? "" : ",\n") << "    {\"dataset\": " << json_string(c->dataset)
              << ", \"mask\": " << json_string(c->mask) << ", \"seed\": " << c->seed
              << ", \"image_index\": " << i << ", \"image_id\": " << json_string(item.id)
              << ", \"label\": " << item.label << ", \"sample_index\": " << s
              << ", \"sample_seed\": " << seed << ", \"gt\": " << json_string(rel + "/gt.png")
              << ", \"mask_file\": " << json_string(rel + "/mask.png")
              << ", \"masked\": " << json_string(rel + "/masked.png")
              << ", \"prediction\": " << json_string(pred) << "}";
        first = false;
      }
    }
  }
  std::ostringstream json;
  json << "{\n  \"experiment\": " << json_string(ex.name)
       << ",\n  \"model\": " << json_string(ex.model) << ",\n  \"samples\": " << ex.samples
       << ",\n  \"metrics\": [";
  for (size_t k = 0; k < ex.metric_names.size(); ++k)
    json << (k ? ", " : "") << json_string(ex.metric_names[k]);
  json << "],\n  \"conventions\": {\"images\": \"PNG, RGB, 8 bit\", \"mask\": \"255 = known "
          "pixel, 0 = to inpaint\", \"masked\": \"image x mask in [-1,1] as the reference's "
          "masked.png: the hole is grey (128)\", \"prediction\": \"write your image here; "
          "k = seed position x samples + sample index\"},\n  \"items\": [\n"
       << items.str() << "\n  ]\n}\n";
  const std::string inputs = inputs_json(input_set_hashes(ex, in));
  std::string js = json.str();
  js.insert(js.rfind("\n}"), ",\n  \"inputs\": " + inputs);
  write_file_atomic((fs::path(dir) / "manifest.csv").string(), csv.str());
  write_file_atomic((fs::path(dir) / "manifest.json").string(), js);
  return folders;
}

ScoreSummary score_predictions(const Experiment& ex, const ScoreOptions& o) {
  if (o.name.empty()) throw UsageError("score: --as NAME is required");
  if (Registry<Method>::global().contains(o.name)) {
    throw UsageError("score: --as '" + o.name +
                     "' is a built-in method's name; stored under it, the predictions would pass "
                     "for that method's results: give a name of their own (e.g. " +
                     o.name + "_ref)");
  }
  if (!fs::is_directory(o.predictions))
    throw InputError("score: predictions folder '" + o.predictions + "' not found");
  Inputs in(ex);
  check_manifest(ex, in, o.predictions);
  std::vector<std::unique_ptr<Metric>> metrics;
  for (const auto& name : ex.metrics) {
    metrics.push_back(Registry<Metric>::global().at(name).factory(ex.metric_settings.at(name)));
  }
  const std::vector<std::unique_ptr<SetMetric>> set_metrics = open_set_metrics(ex);
  const std::string dir = o.out_dir.empty() ? default_results_dir(ex) : o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw InputError("cannot create results folder '" + dir + "'");
  const ResultPaths paths = result_paths(dir, 0, 1);
  Lock lock(paths.db + ".lock");
  ResultsDb db(paths.db, true);
  ScoreSummary summary;
  summary.db = paths.db;

  const int64_t run_id = db.add_run(score_run_record(ex, o));
  ScoreContext sc{ex, o, in, metrics, paths, db, run_id, seed_positions(ex)};
  int64_t position = static_cast<int64_t>(ex.cells.size()) * 1000;
  SetScoreRequest sets;  // the metrics over a set of each cell of NAME that is complete
  sets.dir = dir;
  sets.samples = ex.samples;
  sets.run_id = run_id;
  for (const ExperimentCell* grid_cell : input_cells(ex)) {
    sets.cell_keys.insert(score_cell(sc, *grid_cell, position++, summary));
    sets.images[grid_cell->dataset] = in.size(grid_cell->dataset);
  }
  summary.set_scores = update_set_scores(db, sets, set_metrics).scored;
  db.finish_run(run_id, utc_timestamp(),
                summary.missing.empty() && summary.mis_sized.empty()
                    ? "finished"
                    : "finished with missing predictions");
  return summary;
}

}  // namespace copaint
