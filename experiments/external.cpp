// export-inputs and score: an experiment's inputs as plain files, and predicted images scored
// into its results.
#include "experiments/external.h"

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

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/image_io.h"
#include "experiments/models.h"
#include "experiments/results_db.h"
#include "experiments/results_h5.h"
#include "experiments/runner.h"
#include "experiments/stored_images.h"
#include "framework/atomic_file.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/registry.h"
#include "framework/version.h"
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

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string shape_text(const at::Tensor& t) {
  std::string s;
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? "x" : "") + std::to_string(t.size(d));
  return s;
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
  std::map<int64_t, int64_t> seed_pos;
  for (size_t k = 0; k < ex.seeds.size(); ++k) seed_pos[ex.seeds[k]] = static_cast<int64_t>(k);
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
  for (size_t k = 0; k < ex.metrics.size(); ++k)
    json << (k ? ", " : "") << json_string(ex.metrics[k]);
  json << "],\n  \"conventions\": {\"images\": \"PNG, RGB, 8 bit\", \"mask\": \"255 = known "
          "pixel, 0 = to inpaint\", \"masked\": \"image x mask in [-1,1] as the reference's "
          "masked.png: the hole is grey (128)\", \"prediction\": \"write your image here; "
          "k = seed position x samples + sample index\"},\n  \"items\": [\n"
       << items.str() << "\n  ]\n}\n";
  write_file_atomic((fs::path(dir) / "manifest.csv").string(), csv.str());
  write_file_atomic((fs::path(dir) / "manifest.json").string(), json.str());
  return folders;
}

ScoreSummary score_predictions(const Experiment& ex, const ScoreOptions& o) {
  if (o.name.empty()) throw UsageError("score: --as NAME is required");
  if (!fs::is_directory(o.predictions))
    throw InputError("score: predictions folder '" + o.predictions + "' not found");
  Inputs in(ex);
  std::vector<std::unique_ptr<Metric>> metrics;
  for (const auto& name : ex.metrics) {
    metrics.push_back(Registry<Metric>::global().at(name).factory(ex.metric_settings.at(name)));
  }
  const std::string dir = o.out_dir.empty() ? default_results_dir(ex) : o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw InputError("cannot create results folder '" + dir + "'");
  const ResultPaths paths = result_paths(dir, 0, 1);
  Lock lock(paths.db + ".lock");
  ResultsDb db(paths.db, true);
  ScoreSummary summary;
  summary.db = paths.db;

  RunRecord run;
  run.name = ex.name;
  run.config = ex.config_text() + "score." + o.name + " = " + o.predictions + "\n";
  run.config_hash = ex.config_hash();
  run.device = "copaint score --predictions " + o.predictions + " --as " + o.name;
  run.cuda = "no";
  run.git_revision = git_revision();
  run.started = utc_now();
  run.status = "running";
  const int64_t run_id = db.add_run(run);

  std::map<int64_t, int64_t> seed_pos;
  for (size_t k = 0; k < ex.seeds.size(); ++k) seed_pos[ex.seeds[k]] = static_cast<int64_t>(k);
  const fs::path pred(o.predictions);
  int64_t position = static_cast<int64_t>(ex.cells.size()) * 1000;
  const std::string h5_name = fs::path(paths.h5).filename().string();
  for (const ExperimentCell* grid_cell : input_cells(ex)) {
    ExperimentCell cell = *grid_cell;
    cell.method = o.name;
    cell.method_settings = o.settings;
    cell.axes.clear();
    CellRecord cr = cell_record(cell);  // as `run` stores it, after the grid
    cr.position = position++;
    const int64_t cell_id = db.ensure_cell(cr);
    std::vector<SampleRecord> records;
    std::vector<at::Tensor> preds, refs, masks;
    for (int64_t i = 0; i < in.size(cell.dataset); ++i) {
      const ImageItem& item = in.item(cell.dataset, i);
      const std::string folder = image_folder_name(item.id);
      for (int64_t s = 0; s < ex.samples; ++s) {
        const std::string file =
            folder + "/samples/" + sample_file(seed_pos.at(cell.seed) * ex.samples + s);
        // The full layout, or without the dataset (one dataset), or without both (one mask too).
        std::vector<fs::path> candidates = {pred / cell.dataset / cell.mask / file};
        if (ex.datasets.size() == 1) candidates.push_back(pred / cell.mask / file);
        if (ex.datasets.size() == 1 && ex.masks.size() == 1) candidates.push_back(pred / file);
        const auto found = std::find_if(candidates.begin(), candidates.end(),
                                        [](const fs::path& p) { return fs::is_regular_file(p); });
        if (found == candidates.end()) {
          summary.missing.push_back(candidates.front().string());
          continue;
        }
        at::Tensor image;
        try {
          image = read_image(found->string(), item.image.size(0));
        } catch (const std::exception& e) {
          summary.mis_sized.push_back(found->string() + ": unreadable (" + e.what() + ")");
          continue;
        }
        if (!image.sizes().equals(item.image.sizes())) {
          summary.mis_sized.push_back(found->string() + ": " + shape_text(image) + ", expected " +
                                      shape_text(item.image) + " (CxHxW)");
          continue;
        }
        SampleRecord r;
        r.cell_id = cell_id;
        r.image_index = i;
        r.image_id = item.id;
        r.sample_index = s;
        r.run_id = run_id;
        r.status = "ok";
        r.h5_file = h5_name;
        // The paths `run` uses, so a run's references and masks are shared, not copied.
        r.reference_path = "/references/" + dataset_key(cell.dataset, cell.dataset_settings) + "/" +
                           std::to_string(i);
        r.mask_path = "/masks/" + mask_key(cell, item.image.size(1), item.image.size(2)) + "/" +
                      std::to_string(i);
        r.sample_path = "/samples/" + cr.key + "/" + std::to_string(i) + "_" + std::to_string(s);
        records.push_back(r);
        preds.push_back(image);
        refs.push_back(item.image);
        masks.push_back(in.mask(cell, i));
      }
    }
    if (records.empty()) continue;
    const at::Tensor p = at::stack(preds), ref = at::stack(refs), m = at::stack(masks);
    for (auto& metric : metrics) {
      at::Tensor v;
      try {
        v = metric->score(p, ref, m).to(at::kCPU, at::kDouble).contiguous();
      } catch (const UsageError&) {
        throw;
      } catch (const std::exception& e) {
        log_warn(o.name + " / " + cell.mask + ": metric " + metric->name() +
                 " not scored: " + e.what());
        continue;
      }
      for (size_t k = 0; k < records.size(); ++k) {
        records[k].scores.push_back({metric->name(), v[static_cast<int64_t>(k)].item<double>(),
                                     metric->higher_is_better()});
      }
    }
    {
      ResultsH5 h5(paths.h5, ResultsH5::Mode::kWrite);
      for (size_t k = 0; k < records.size(); ++k) {
        const auto& r = records[k];
        store_sample_images(h5, cell, r, refs[k], masks[k], preds[k], /*generator_seed=*/-1);
      }
      h5.close();  // checked: a full disk is an error before the rows are committed
    }
    db.write_samples(records);
    summary.scored += static_cast<int64_t>(records.size());
  }
  db.finish_run(run_id, utc_now(),
                summary.missing.empty() && summary.mis_sized.empty()
                    ? "finished"
                    : "finished with missing predictions");
  return summary;
}

}  // namespace copaint
