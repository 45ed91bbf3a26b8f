// The experiment runner: planning (shards, resume), batching, scoring and storing samples.
#include "experiments/experiment/runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <ostream>
#include <set>

#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/experiment/inpaint_batch.h"
#include "experiments/experiment/sample_images.h"
#include "experiments/experiment/set_scores.h"
#include "experiments/store/file_lock.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "experiments/store/results_json.h"
#include "experiments/store/stored_images.h"
#include "framework/core/atomic_file.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/input_hash.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/torch_compat.h"
#include "framework/core/version.h"
#include "framework/diffusion/model.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "metrics/metric.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

/// Seconds as h:mm:ss.
std::string hms(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?:??:??";
  const long long t = static_cast<long long>(seconds + 0.5);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  return buf;
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string host_name() {
  char buf[HOST_NAME_MAX + 1] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

/// This process's arguments (from /proc/self/cmdline; empty where there is none).
std::vector<std::string> process_arguments() {
  std::vector<std::string> out;
  std::FILE* f = std::fopen("/proc/self/cmdline", "rb");
  if (!f) return out;
  std::string cur;
  for (int c; (c = std::fgetc(f)) != EOF;) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(static_cast<char>(c));
    }
  }
  if (!cur.empty()) out.push_back(cur);
  std::fclose(f);
  return out;
}

/// SIGTERM / SIGINT during a run: finish the batch in progress, store it, stop cleanly (a second
/// SIGINT ends the process at once).
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

/// Installs the stop handlers for the life of the object (restoring the previous ones).
class StopSignals {
 public:
  explicit StopSignals(bool enabled) : enabled_(enabled) {
    g_stop_signal = 0;
    if (!enabled_) return;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    // SIGTERM may come twice (SLURM signals the batch script, which forwards it, and every
    // process): the later ones change nothing; SLURM's SIGKILL follows after its KillWait.
    sigaction(SIGTERM, &sa, &old_term_);
    sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C ends the process at once
    sigaction(SIGINT, &sa, &old_int_);
  }
  ~StopSignals() {
    if (!enabled_) return;
    sigaction(SIGTERM, &old_term_, nullptr);
    sigaction(SIGINT, &old_int_, nullptr);
  }
  int signal() const { return g_stop_signal; }

 private:
  bool enabled_;
  struct sigaction old_term_ = {};
  struct sigaction old_int_ = {};
};

/// What one sample of `cell` costs for the ETA: its UNet evaluations (1 when unknown).
double sample_cost(const ExperimentCell& cell) {
  return static_cast<double>(std::max<int64_t>(1, cell.expected_forwards));
}

/// Progress of a run: the bar on a terminal; elsewhere (a SLURM log, a pipe) one line every
/// `interval` seconds with done/total, rate, elapsed and ETA, and one at the end. The ETA is
/// from the cost done so far (UNet evaluations, sample_cost), not the sample count, so a grid
/// whose cheap cells run first does not promise an early end.
class RunProgress {
 public:
  RunProgress(int64_t total, double total_cost, const std::string& label, double interval,
              bool force_lines)
      : bar_(total, label),
        total_(total),
        total_cost_(total_cost),
        label_(label),
        interval_(interval) {
    lines_ = interval_ > 0 && (force_lines || !isatty(fileno(stderr)));
    start_ = last_ = std::chrono::steady_clock::now();
  }
  void advance(int64_t n, double cost, const std::string& status) {
    done_ += n;
    done_cost_ += cost;
    status_ = status;
    bar_.advance(n, status);
    if (!lines_) return;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() >= interval_) {
      last_ = now;
      line("");
    }
  }
  void finish(const std::string& how) {
    if (finished_) return;
    finished_ = true;
    bar_.finish();
    if (lines_ && total_ > 0) line(how);
  }

 private:
  void line(const std::string& how) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
    const double cost_rate = elapsed > 0 ? done_cost_ / elapsed : 0.0;
    const double eta = cost_rate > 0 ? (total_cost_ - done_cost_) / cost_rate : -1;
    char buf[256];
    std::snprintf(
        buf, sizeof buf, "progress: %lld/%lld samples (%.1f%%), %.2f samples/s, elapsed %s, ETA %s",
        static_cast<long long>(done_), static_cast<long long>(total_),
        total_ > 0 ? 100.0 * static_cast<double>(done_) / static_cast<double>(total_) : 100.0, rate,
        hms(elapsed).c_str(), how.empty() ? hms(eta).c_str() : "-");
    log_info(label_ + " " + buf +
             (how.empty() ? (status_.empty() ? "" : "; " + status_) : "; " + how));
  }
  ProgressBar bar_;
  int64_t total_, done_ = 0;
  double total_cost_, done_cost_ = 0;
  std::string label_, status_;
  double interval_;
  bool lines_ = false, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

/// Calls f(cell, image, sample) for every work item of this shard, in grid order. Work item k
/// (counting over cells, then images, then samples) belongs to shard k % count.
template <class F>
void for_each_selected(const Experiment& ex, const std::map<std::string, int64_t>& images,
                       int64_t shard_index, int64_t shard_count, F f) {
  int64_t k = 0;
  for (const auto& cell : ex.cells) {
    const int64_t n = std::max<int64_t>(0, images.at(cell.dataset));
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t s = 0; s < ex.samples; ++s, ++k) {
        if (k % shard_count == shard_index) f(cell, i, s);
      }
    }
  }
}

bool is_done(const std::map<std::pair<int64_t, int64_t>, std::string>& status, int64_t i, int64_t s,
             const RunOptions& o) {
  if (o.force) return false;
  auto it = status.find({i, s});
  if (it == status.end()) return false;
  return it->second == "ok" || (it->second == "error" && !o.retry_failed);
}

/// A row's status for is_done: an error row that holds a device failure (stored by versions
/// that did not stop on them: out of memory, a CUDA error) is not the sample's own failure, so a
/// resume runs it again ("device-error" is never done).
std::string resume_status(const SampleRecord& r) {
  if (r.status == "error" && device_fault(std::runtime_error(r.error)) != DeviceFault::kNone)
    return "device-error";
  return r.status;
}

/// One sample to compute.
struct Item {
  int64_t image = 0;
  int64_t sample = 0;
};

/// On resume: can the images of a sample stored as ok be read back? A results.h5 that was
/// deleted, emptied, truncated or partly overwritten must not count as stored. A file of this
/// shard that HDF5 cannot open at all is moved aside (<name>.damaged-<time>, kept for the user)
/// so that the run can write a new one.
class StoredImages {
 public:
  StoredImages(const std::string& dir, const std::string& own_h5) : dir_(dir), own_(own_h5) {}
  bool readable(const SampleRecord& r) {
    ResultsH5* f = file(r.h5_file);
    if (!f) return false;
    for (const std::string& path : {r.sample_path, r.reference_path, r.mask_path}) {
      if (path.empty() || verified_.count(r.h5_file + path)) continue;
      if (!f->readable(path)) return false;
      if (path != r.sample_path) verified_.insert(r.h5_file + path);
    }
    return true;
  }
  /// The hash of the reference (or mask) stored for `r` (framework/core/input_hash.h): what
  /// rows stored before schema version 3, which have no hash, are checked by. "" when it does
  /// not read back.
  std::string input_sha256(const SampleRecord& r, bool mask) {
    const std::string path = mask ? r.mask_path : r.reference_path;
    auto it = hashes_.find(r.h5_file + path);
    if (it != hashes_.end()) return it->second;
    std::string sha;
    ResultsH5* f = file(r.h5_file);
    try {
      if (f && !path.empty())
        sha = mask ? mask_sha256(f->read_mask(path)) : uint8_sha256(f->read_uint8(path));
    } catch (const InputError&) {
      sha.clear();
    }
    return hashes_[r.h5_file + path] = sha;
  }
  /// The stored sample of `r` as [C,H,W] in [-1,1]: its float32 copy when the run stored one
  /// (`float_samples`), else the uint8 image; *exact tells which.
  at::Tensor sample(const SampleRecord& r, bool* exact) {
    ResultsH5* f = file(r.h5_file);
    if (!f) throw InputError("'" + r.h5_file + "' cannot be opened");
    const std::string float_path = float_sample_path(r.sample_path);
    *exact = f->contains(float_path) && f->readable(float_path);
    return *exact ? f->read_float(float_path) : f->read_image(r.sample_path);
  }
  /// Opens this shard's own file when it exists (moving it aside when HDF5 cannot open it).
  void check_own() { file(fs::path(own_).filename().string()); }
  /// Closes the files (the run opens its own for writing).
  void close() { files_.clear(); }

 private:
  ResultsH5* file(const std::string& name) {
    auto it = files_.find(name);
    if (it != files_.end()) return it->second.get();
    std::unique_ptr<ResultsH5>& f = files_[name];
    const std::string path = (fs::path(dir_) / name).string();
    std::error_code ec;
    if (name.empty() || !fs::exists(path, ec)) return nullptr;
    try {
      f = std::make_unique<ResultsH5>(path, ResultsH5::Mode::kRead);
    } catch (const InputError& e) {
      log_warn(std::string(e.what()) + " (damaged?)");
      if (fs::equivalent(path, own_, ec)) {
        const std::string aside = path + ".damaged-" + std::to_string(std::time(nullptr));
        fs::rename(path, aside, ec);
        if (ec) throw InputError("cannot move damaged '" + path + "' aside: " + ec.message());
        log_warn("moved '" + path + "' to '" + aside + "'; its samples are recomputed");
      }
    }
    return f.get();
  }
  std::string dir_, own_;
  std::map<std::string, std::unique_ptr<ResultsH5>> files_;
  std::set<std::string> verified_;             ///< references and masks read back once
  std::map<std::string, std::string> hashes_;  ///< input_sha256 by file + path
};

/// A run of this shard that was killed or failed (a full disk) may have left its HDF5 file with
/// stale free-space and end-of-file records (HDF5 has no journal), where later writes could land
/// on stored images: the file is rebuilt from what reads back before anything is written to it.
/// A file HDF5 cannot open is left to StoredImages (moved aside).
void salvage_after_abnormal_end(const ResultsDb& db, const ResultPaths& paths,
                                const std::string& shard, const std::string& name) {
  std::string last;
  for (const auto& r : db.runs()) {
    if (r.shard == shard) last = r.status;
  }
  std::error_code ec;
  if (last.empty() || last.rfind("finished", 0) == 0 || last == "stopped" ||
      !fs::exists(paths.h5, ec)) {
    return;
  }
  try {
    ResultsH5(paths.h5, ResultsH5::Mode::kRead).close();
  } catch (const InputError&) {
    return;
  }
  const SalvageSummary s = salvage_h5(paths.h5);
  log_warn("run " + name + ": the previous run ended abnormally (" +
           last.substr(0, std::min<size_t>(last.size(), 120)) + "); rebuilt " +
           fs::path(paths.h5).filename().string() + " from its " + std::to_string(s.kept) +
           " readable dataset(s)" +
           (s.dropped ? ", " + std::to_string(s.dropped) + " unreadable one(s) dropped" : ""));
}

/// Runs `f`, prefixing a configuration or file error with where the experiment set `keys`.
template <class F>
auto blame(const Experiment& ex, const std::vector<std::string>& keys, F f) {
  try {
    return f();
  } catch (const UsageError& e) {
    throw UsageError(ex.where(keys) + ": " + e.what());
  } catch (const InputError& e) {
    throw InputError(ex.where(keys) + ": " + e.what());
  }
}

/// The experiment as it runs on `device`: `precision=auto` resolved in the model settings where
/// it means half precision (resolve_auto_precision), so the precision that runs is part of every
/// cell's key.
Experiment with_run_precision(const Experiment& ex, const c10::Device& device) {
  Experiment out = ex;
  out.model_settings = resolve_auto_precision(ex.model_settings, device);
  for (auto& cell : out.cells)
    cell.model_settings = resolve_auto_precision(cell.model_settings, device);
  return out;
}

/// The device a run would use, for planning: a CUDA device is assumed where none is visible (a
/// dry-run on a login node).
c10::Device planned_device(const std::string& spec) {
  try {
    return parse_device(spec);
  } catch (const UsageError&) {
    return spec.rfind("cuda", 0) == 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
}

/// What became of one sample.
struct Outcome {
  bool ok = false;
  at::Tensor sample;  ///< [C,H,W] on the CPU
  double seconds = 0;
  EvalCounter evals;
  int64_t nonfinite_grads = -1;  ///< this sample's (methods/gradients.h); -1 = not counted
  int64_t peak = 0;
  std::string error;
  std::vector<ScoreRecord> scores;
};

}  // namespace

std::string utc_timestamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string dataset_key(const std::string& name, const Options& settings) {
  Options s = settings;
  s.erase("count");
  return name + "-" + s.hash().substr(0, 8);
}

std::string mask_key(const ExperimentCell& c, int64_t h, int64_t w) {
  return c.mask + "-" +
         fnv1a_hex(c.mask_settings.canonical() + "mask_seed=" + std::to_string(c.mask_seed) +
                   "\nsize=" + std::to_string(h) + "x" + std::to_string(w) + "\n")
             .substr(0, 8);
}

CellRecord cell_record(const ExperimentCell& c) {
  CellRecord r;
  r.key = c.key();
  r.position = c.index;
  r.method = c.method;
  r.settings = c.method_settings.canonical();
  r.settings_hash = c.method_settings.hash();
  r.axes = c.axes_label();
  r.dataset = c.dataset;
  r.dataset_settings = c.dataset_settings.canonical();
  r.mask = c.mask;
  r.mask_settings = c.mask_settings.canonical();
  r.model = c.model;
  r.model_settings = model_settings_for_results(c.model_settings).canonical();
  r.seed = c.seed;
  r.mask_seed = c.mask_seed;
  return r;
}

ResultPaths result_paths(const std::string& dir, int64_t shard_index, int64_t shard_count) {
  ResultPaths p;
  p.dir = dir;
  const std::string stem = shard_count <= 1 ? "results"
                                            : "results.shard-" + std::to_string(shard_index) +
                                                  "-of-" + std::to_string(shard_count);
  p.db = (fs::path(dir) / (stem + ".sqlite")).string();
  p.h5 = (fs::path(dir) / (stem + ".h5")).string();
  return p;
}

std::string default_results_dir(const Experiment& ex) {
  return (fs::path("results") / ex.name).string();
}

void parse_shard(const std::string& text, int64_t* index, int64_t* count) {
  const auto slash = text.find('/');
  bool ok = slash != std::string::npos;
  if (ok) {
    try {
      size_t a = 0, b = 0;
      const std::string i = text.substr(0, slash), n = text.substr(slash + 1);
      *index = std::stoll(i, &a);
      *count = std::stoll(n, &b);
      ok = a == i.size() && b == n.size() && *count >= 1 && *index >= 0 && *index < *count;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok) throw UsageError("--shard must be i/n with 0 <= i < n, got '" + text + "'");
}

uint64_t experiment_sample_seed(int64_t seed, int64_t image_index, int64_t sample_index) {
  return inpaint_sample_seed(inpaint_sample_seed(static_cast<uint64_t>(seed), image_index),
                             sample_index);
}

GridPlan plan_experiment(const Experiment& experiment, const RunOptions& options) {
  const Experiment ex = with_run_precision(experiment, planned_device(options.device));
  GridPlan plan;
  for (const auto& name : ex.datasets) {
    const Options& settings = ex.dataset_settings.at(name);
    try {
      plan.images[name] = Registry<Dataset>::global().at(name).factory(settings)->size();
    } catch (const std::exception& e) {
      const int64_t count = settings.has("count") ? settings.get_int("count") : -1;
      plan.images[name] = count > 0 ? count : -1;
      plan.notes[name] = std::string("not opened (") + e.what() + ")" +
                         (count > 0 ? "; counted from its `count` setting" : "");
      if (count <= 0) plan.images_known = false;
    }
  }
  for (const auto& name : ex.masks) {
    try {
      Registry<MaskGenerator>::global().at(name).factory(ex.mask_settings.at(name));
    } catch (const std::exception& e) {
      plan.warnings.push_back("mask " + name + ": " + e.what());
    }
  }
  const std::string checkpoint = ex.model_settings.get("checkpoint", "");
  std::error_code fs_ec;
  if (ex.model_settings.has("checkpoint") && !fs::is_regular_file(checkpoint, fs_ec) &&
      !fs::is_directory(checkpoint, fs_ec)) {  // a file, or a diffusers folder
    plan.warnings.push_back("model " + ex.model + ": checkpoint '" + checkpoint + "' " +
                            (checkpoint.empty() ? "not set" : "not found"));
  }
  const std::string dir = options.out_dir.empty() ? default_results_dir(ex) : options.out_dir;
  const ResultPaths paths = result_paths(dir, options.shard_index, options.shard_count);
  std::unique_ptr<ResultsDb> db;
  std::error_code ec;
  if (fs::is_regular_file(paths.db, ec)) db = std::make_unique<ResultsDb>(paths.db, false);
  std::map<std::string, int64_t> cell_ids;
  if (db) {
    for (const auto& c : db->cells()) cell_ids[c.key] = c.id;
  }

  plan.cells.resize(ex.cells.size());
  std::map<std::pair<int64_t, int64_t>, std::string> status;
  int64_t status_cell = -1;
  for_each_selected(ex, plan.images, options.shard_index, options.shard_count,
                    [&](const ExperimentCell& cell, int64_t i, int64_t s) {
                      CellPlan& cp = plan.cells[cell.index];
                      if (status_cell != cell.index) {
                        status_cell = cell.index;
                        status.clear();
                        auto it = cell_ids.find(cell.key());
                        if (db && it != cell_ids.end()) status = db->sample_status(it->second);
                      }
                      ++cp.selected;
                      if (is_done(status, i, s, options)) ++cp.done;
                    });
  for (const auto& cell : ex.cells) {
    CellPlan& cp = plan.cells[cell.index];
    cp.cell = cell.index;
    cp.images = plan.images.at(cell.dataset);
    cp.forwards_per_sample = cell.expected_forwards;
    plan.selected += cp.selected;
    plan.done += cp.done;
    plan.total_forwards += cp.selected * cp.forwards_per_sample;
    plan.pending_forwards += (cp.selected - cp.done) * cp.forwards_per_sample;
  }
  return plan;
}

void print_plan(const Experiment& ex, const GridPlan& plan, std::ostream& out) {
  char line[512];
  out << "experiment " << ex.name << " (" << ex.source << "), config " << ex.config_hash()
      << ": model " << ex.model << ", " << ex.datasets.size() << " dataset(s), "
      << ex.methods.size() << " method(s), " << ex.masks.size() << " mask(s), " << ex.seeds.size()
      << " seed(s), " << ex.samples << " sample(s) per image -> " << ex.cells.size() << " cells\n";
  for (const auto& [name, n] : plan.images) {
    out << "dataset " << name << ": "
        << (n < 0 ? std::string("? images") : std::to_string(n) + " images");
    auto it = plan.notes.find(name);
    if (it != plan.notes.end()) out << " - " << it->second;
    out << "\n";
  }
  std::snprintf(line, sizeof line, "%5s  %-12s %-28s %-9s %5s %8s %6s %10s %13s\n", "cell",
                "method", "settings", "mask", "seed", "samples", "done", "fwd/sample", "forwards");
  out << line;
  for (const auto& cp : plan.cells) {
    const ExperimentCell& c = ex.cells[cp.cell];
    std::string axes = c.axes_label();
    if (axes.empty()) axes = "-";
    std::snprintf(line, sizeof line,
                  "%5" PRId64 "  %-12s %-28s %-9s %5" PRId64 " %8" PRId64 " %6" PRId64 " %10" PRId64
                  " %13" PRId64 "\n",
                  c.index, c.method.c_str(), axes.c_str(), c.mask.c_str(), c.seed, cp.selected,
                  cp.done, cp.forwards_per_sample, cp.selected * cp.forwards_per_sample);
    out << line;
  }
  std::snprintf(line, sizeof line,
                "total: %zu cells, %" PRId64 " samples (%" PRId64 " done, %" PRId64
                " to run), %" PRId64 " UNet forwards (%" PRId64
                " to run) = expected forwards per sample x samples x images\n",
                ex.cells.size(), plan.selected, plan.done, plan.selected - plan.done,
                plan.total_forwards, plan.pending_forwards);
  out << line;
  if (!plan.images_known) out << "(image counts unknown for some datasets: totals are partial)\n";
  for (const auto& w : plan.warnings) out << "warning: a run would fail: " << w << "\n";
}

namespace {

/// What a run reads: the model, datasets, masks and metrics, opened before any work so that a
/// missing checkpoint or bad file fails first.
struct RunInputs {
  std::unique_ptr<Denoiser> model;
  std::map<std::string, std::unique_ptr<Dataset>> datasets;
  std::map<std::string, int64_t> images;  ///< per dataset
  std::map<std::string, std::unique_ptr<MaskGenerator>> masks;
  std::vector<std::unique_ptr<Metric>> metrics;
  std::vector<std::unique_ptr<SetMetric>> set_metrics;  ///< scored per complete cell
};

RunInputs open_inputs(const Experiment& ex, const c10::Device& device) {
  RunInputs in;
  in.model = blame(ex, {ex.model + ".checkpoint", "model"}, [&] {
    return Registry<Denoiser>::global().at(ex.model).factory(ex.model_settings);
  });
  in.model->to(device);
  for (const auto& name : ex.datasets) {
    in.datasets[name] = blame(ex, {name + ".root", "dataset"}, [&] {
      return Registry<Dataset>::global().at(name).factory(ex.dataset_settings.at(name));
    });
    in.images[name] = in.datasets[name]->size();
    if (in.images[name] == 0) log_warn("dataset " + name + " has no images");
  }
  for (const auto& name : ex.masks) {
    in.masks[name] = blame(ex, {name + ".dir", name + ".path", "masks"}, [&] {
      return Registry<MaskGenerator>::global().at(name).factory(ex.mask_settings.at(name));
    });
  }
  for (const auto& name : ex.metrics) {
    in.metrics.push_back(blame(
        ex, {name + ".weights", name + ".heads", name + ".trunk", "metrics"},
        [&] { return Registry<Metric>::global().at(name).factory(ex.metric_settings.at(name)); }));
  }
  in.set_metrics = open_set_metrics(ex);
  return in;
}

/// The experiment row of this run (status running).
RunRecord make_run_record(const Experiment& ex, const RunOptions& options,
                          const c10::Device& device, const Denoiser& model) {
  RunRecord run;
  run.name = ex.name;
  run.config = ex.config_text();
  run.config_hash = ex.config_hash();
  run.git_revision = git_revision();
  run.torch_version = torch_version();
  run.cuda = cuda_available() ? "yes (" + std::to_string(cuda_device_count()) + " GPU(s))" : "no";
  // The placement of a `run --jobs` worker (or a SLURM allocation) on a node's GPUs.
  const std::string visible = env_or_empty("CUDA_VISIBLE_DEVICES");
  run.device = describe_device(device) +
               (device.is_cuda() && !visible.empty() ? "; CUDA_VISIBLE_DEVICES=" + visible : "") +
               "; model " + model.describe();
  run.device_type = device.str();
  run.threads = at::get_num_threads();
  run.host = host_name();
  run.slurm_job_id = env_or_empty("SLURM_JOB_ID");
  run.slurm_array_job_id = env_or_empty("SLURM_ARRAY_JOB_ID");
  run.slurm_array_task_id = env_or_empty("SLURM_ARRAY_TASK_ID");
  run.command_line = json_string_array(process_arguments());
  run.model_description = model.describe();
  run.shard = options.shard_count > 1
                  ? std::to_string(options.shard_index) + "/" + std::to_string(options.shard_count)
                  : "";
  run.started = utc_timestamp();
  run.status = "running";
  return run;
}

/// What identifies an input image now: its id and image_sha256 (framework/core/input_hash.h);
/// both "" when it cannot be read.
struct ImageIdentity {
  std::string id, sha256;
};

/// Images and masks, read when first needed. An image that cannot be read (corrupt, truncated,
/// unreadable file) or has the wrong shape is skipped: each of its samples is stored with status
/// error and the reason, and the run goes on; its failure is remembered, so it is read (and
/// warned about) once. A configuration error (UsageError, e.g. no image decoder) ends the run.
class ImageSource {
 public:
  ImageSource(const Experiment& ex, RunInputs& in, int64_t channels, int64_t size)
      : ex_(ex), in_(in), channels_(channels), size_(size) {}

  const ImageItem& item(const std::string& ds, int64_t i) {
    const auto key = std::make_pair(ds, i);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    return cache_.emplace(key, load(ds, i)).first->second;
  }

  /// Image i's identity now (its id and image_sha256; "" for both when it cannot be read),
  /// hashed once; an image not in use is read for it and not kept.
  const ImageIdentity& identity(const std::string& ds, int64_t i) {
    const auto key = std::make_pair(ds, i);
    auto it = ids_.find(key);
    if (it != ids_.end()) return it->second;
    ImageIdentity id;
    auto cached = cache_.find(key);
    try {
      const ImageItem item = cached != cache_.end() ? cached->second : load(ds, i);
      id = {item.id, image_sha256(item.image)};
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception&) {
      id = {};  // recorded (and warned about) by load
    }
    return ids_.emplace(key, id).first->second;
  }

  /// mask_sha256 of mask(c, i), hashed once; a mask not in use is made for it and not kept.
  const std::string& mask_hash(const ExperimentCell& c, int64_t i) {
    const auto key = std::make_pair(mask_key(c, size_, size_), i);
    auto it = mask_ids_.find(key);
    if (it != mask_ids_.end()) return it->second;
    auto made = masks_.find(key);
    const std::string h = mask_sha256(
        made != masks_.end()
            ? made->second
            : in_.masks.at(c.mask)->make(size_, size_, i, static_cast<uint64_t>(c.mask_seed)));
    return mask_ids_.emplace(key, h).first->second;
  }
  bool failed(const std::string& ds, int64_t i) const { return errors_.count({ds, i}) > 0; }

  const at::Tensor& mask(const ExperimentCell& c, int64_t i) {
    const auto key = std::make_pair(mask_key(c, size_, size_), i);
    auto it = masks_.find(key);
    if (it == masks_.end()) {
      at::Tensor m =
          in_.masks.at(c.mask)->make(size_, size_, i, static_cast<uint64_t>(c.mask_seed));
      it = masks_.emplace(key, m.to(at::kFloat).contiguous()).first;
    }
    return it->second;
  }

  /// A dataset whose images all have the wrong shape is a configuration error: fails before any
  /// work on the first image that loads, if it does not fit the model.
  void check_first_images() {
    for (const auto& name : ex_.datasets) {
      for (int64_t i = 0; i < in_.images.at(name); ++i) {
        ImageItem first;
        try {
          first = in_.datasets.at(name)->get(i);
        } catch (const UsageError&) {
          throw;
        } catch (const std::exception&) {
          continue;  // recorded when its samples come up
        }
        check_shape(name, first);
        cache_.emplace(std::make_pair(name, i), std::move(first));
        break;
      }
    }
  }

 private:
  /// Reads image i (not kept); one that cannot be used is warned about once, and its reason
  /// recorded and thrown (InputError) at every later call.
  ImageItem load(const std::string& ds, int64_t i) {
    const auto key = std::make_pair(ds, i);
    auto bad = errors_.find(key);
    if (bad != errors_.end()) throw InputError(bad->second);
    try {
      ImageItem item = in_.datasets.at(ds)->get(i);
      check_shape(ds, item);
      return item;
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      const std::string msg = "dataset " + ds + ", image " + std::to_string(i) +
                              " skipped (cannot be used): " + e.what();
      log_warn(msg);
      errors_[key] = msg;
      throw InputError(msg);
    }
  }

  void check_shape(const std::string& ds, const ImageItem& item) const {
    if (item.image.dim() == 3 && item.image.size(0) == channels_ && item.image.size(1) == size_ &&
        item.image.size(2) == size_) {
      return;
    }
    std::string shape;
    for (int64_t d = 0; d < item.image.dim(); ++d)
      shape += (d ? "x" : "") + std::to_string(item.image.size(d));
    throw InputError("image '" + item.id + "' is " + shape + " but model " + ex_.model + " takes " +
                     std::to_string(channels_) + "x" + std::to_string(size_) + "x" +
                     std::to_string(size_) + " (set " + ds + ".size / channels)");
  }

  const Experiment& ex_;
  RunInputs& in_;
  int64_t channels_, size_;
  std::map<std::pair<std::string, int64_t>, ImageItem> cache_;
  std::map<std::pair<std::string, int64_t>, std::string> errors_;
  std::map<std::pair<std::string, int64_t>, at::Tensor> masks_;
  std::map<std::pair<std::string, int64_t>, ImageIdentity> ids_;
  std::map<std::pair<std::string, int64_t>, std::string> mask_ids_;
};

/// Each sample scored on its own, so scores do not depend on how samples were packed into
/// batches (a batched SSIM convolution differed from a single one in the 8th digit: shards
/// differed from an unsharded run). A sample a metric cannot score (e.g. a mask with no unknown
/// pixel for a masked metric) loses only that score: the computed samples are kept.
void score_outcomes(const std::vector<std::unique_ptr<Metric>>& metrics, const at::Tensor& s,
                    const at::Tensor& ref, const at::Tensor& m, const std::string& label,
                    std::vector<Outcome>& out) {
  for (auto& metric : metrics) {
    bool warned = false;
    for (int64_t k = 0; k < static_cast<int64_t>(out.size()); ++k) {
      double v = 0;
      try {
        v = metric->score(s.narrow(0, k, 1), ref.narrow(0, k, 1), m.narrow(0, k, 1))
                .to(at::kCPU, at::kDouble)
                .reshape({-1})[0]
                .item<double>();
      } catch (const UsageError&) {
        throw;
      } catch (const std::exception& e) {
        if (!warned) log_warn(label + ": metric " + metric->name() + " not scored: " + e.what());
        warned = true;
        continue;
      }
      out[k].scores.push_back({metric->name(), v, metric->higher_is_better()});
    }
  }
}

/// A run in progress: what its cells share (inputs, results, progress, stop requests) and the
/// counts across them.
struct RunState {
  const Experiment& ex;
  const RunOptions& options;
  const ResultPaths& paths;
  const c10::Device& device;
  RunInputs& in;
  ImageSource& images;
  ResultsDb& db;
  const std::map<int64_t, int64_t>& cell_ids;
  int64_t run_id = 0;
  RunSummary& summary;
  RunProgress& bar;
  StopSignals& stop_signals;
  int64_t stored = 0;  ///< samples committed to SQLite by this run
  int64_t in_h5 = 0;   ///< samples written to HDF5 by this run
};

/// One cell's work: its method, and how a group of its items is run, scored and stored.
struct CellRun {
  const RunState& st;  ///< the run's resources (st.in and st.images are shared and mutable)
  const ExperimentCell& cell;
  int64_t cell_id = 0;
  std::unique_ptr<Method> method;
  std::string method_error;       ///< why the method could not be built (each sample's error)
  bool warned_nonfinite = false;  ///< the cell's non-finite gradient warning was given

  /// Runs `group` as one batch and scores it; one outcome per item (throws when the batch fails).
  std::vector<Outcome> run_group(const std::vector<Item>& group) {
    if (!method) throw std::runtime_error(method_error);
    Denoiser& model = *st.in.model;
    InpaintBatch batch;
    std::vector<at::Tensor> imgs, msks;
    std::vector<int64_t> labels;
    for (const auto& it : group) {
      const ImageItem& item = st.images.item(cell.dataset, it.image);
      check_class_label(model, model.num_classes() > 0 ? item.label : -1,
                        "image '" + item.id + "'");
      imgs.push_back(item.image);
      msks.push_back(st.images.mask(cell, it.image));
      labels.push_back(item.label);
      batch.seeds.push_back(experiment_sample_seed(cell.seed, it.image, it.sample));
    }
    batch.draw_x_T = false;  // each method draws its own starting noise from the generators
    batch.images = at::stack(imgs);
    batch.masks = at::stack(msks);
    if (model.num_classes() > 0) batch.labels = at::tensor(labels, at::kLong);
    cuda_reset_peak_memory(st.device);
    const InpaintBatchResult r = run_inpaint_batch(*method, model, batch, st.device);
    std::vector<Outcome> out(group.size());
    const int64_t b = static_cast<int64_t>(group.size());
    for (int64_t k = 0; k < b; ++k) {
      out[k].ok = true;
      out[k].sample = r.samples[k];
      out[k].seconds = r.seconds / static_cast<double>(b);
      out[k].evals = r.evals;
      if (r.evals.nonfinite_grads.defined())
        out[k].nonfinite_grads = r.evals.nonfinite_grads[k].item<int64_t>();  // on the host
      out[k].peak = cuda_peak_memory_bytes(st.device);
    }
    if (!st.in.metrics.empty()) {
      score_outcomes(st.in.metrics, r.samples.to(st.device), batch.images.to(st.device),
                     batch.masks.to(st.device), cell.label(), out);
    }
    return out;
  }

  /// The retry policy: samples of unreadable images are errors without running the method; a
  /// batch that fails is rerun sample by sample; a sample that still fails is an error. A
  /// configuration error (UsageError) ends the run.
  std::vector<Outcome> run_with_retry(const std::vector<Item>& group) {
    std::vector<Outcome> outcomes(group.size());
    std::vector<Item> runnable;
    std::vector<size_t> runnable_at;
    for (size_t k = 0; k < group.size(); ++k) {
      try {
        st.images.item(cell.dataset, group[k].image);
        runnable.push_back(group[k]);
        runnable_at.push_back(k);
      } catch (const UsageError&) {
        throw;
      } catch (const std::exception& e) {
        outcomes[k].error = e.what();
      }
    }
    std::vector<Outcome> ran;
    if (!runnable.empty()) {
      try {
        ran = run_group(runnable);
      } catch (const UsageError&) {
        throw;  // a configuration error ends the run (runner.h)
      } catch (const std::exception& e) {
        if (device_fault(e) != DeviceFault::kNone) throw;  // run_fitting's to handle
        if (runnable.size() == 1) {
          ran.assign(1, Outcome{});
          ran[0].error = e.what();
        } else {
          log_warn(cell.label() + ": a batch of " + std::to_string(runnable.size()) + " failed (" +
                   e.what() + "); running its samples one by one");
          for (const auto& it : runnable) ran.push_back(run_alone(it));
        }
      }
    }
    for (size_t k = 0; k < runnable_at.size(); ++k) outcomes[runnable_at[k]] = std::move(ran[k]);
    return outcomes;
  }

  Outcome run_alone(const Item& it) {
    try {
      return run_group({it}).front();
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      if (device_fault(e) != DeviceFault::kNone) throw;
      Outcome o;
      o.error = e.what();
      return o;
    }
  }

  /// Warns once per cell that a sample's gradients were non-finite (the report marks the cell).
  void warn_nonfinite(int64_t steps) {
    if (warned_nonfinite) return;
    warned_nonfinite = true;
    log_warn(cell.label() + ": a sample had " + std::to_string(steps) +
             " gradient step(s) with a non-finite loss or gradient" +
             (st.in.model->reduced_precision()
                  ? " in reduced precision; recomputed with a scaled loss, zeroed where that "
                    "failed"
                  : "") +
             " (column sample.nonfinite_grads; `copaint report` marks the cell [nf n]); warned "
             "once per cell");
  }

  /// Stores a group's images in HDF5 (the file closed, so a write error surfaces here) and returns
  /// its rows, ready for one SQLite transaction.
  std::vector<SampleRecord> store_images(const std::vector<Item>& group,
                                         std::vector<Outcome>& outcomes, RunSummary& summary) {
    const int64_t size = st.in.model->image_size();
    const std::string h5_name = fs::path(st.paths.h5).filename().string();
    std::vector<SampleRecord> records;
    std::unique_ptr<ResultsH5> h5;
    for (size_t k = 0; k < group.size(); ++k) {
      const Item& it = group[k];
      Outcome& o = outcomes[k];
      SampleRecord r;
      r.cell_id = cell_id;
      r.image_index = it.image;
      r.sample_index = it.sample;
      r.run_id = st.run_id;
      const ImageIdentity& input = st.images.identity(cell.dataset, it.image);
      r.image_id = input.id.empty() ? std::to_string(it.image) : input.id;
      r.image_sha256 = input.sha256;
      r.mask_sha256 = st.images.mask_hash(cell, it.image);
      if (!o.ok) {
        r.status = "error";
        r.error = o.error;
        ++summary.errors;
        if (!st.images.failed(cell.dataset, it.image))  // those were warned once
          log_warn(cell.label() + ", image " + std::to_string(it.image) + ", sample " +
                   std::to_string(it.sample) + ": " + o.error);
        records.push_back(std::move(r));
        continue;
      }
      if (!h5) h5 = open_for_batch(outcomes);
      r.h5_file = h5_name;
      r.reference_path = "/references/" + dataset_key(cell.dataset, cell.dataset_settings) + "/" +
                         std::to_string(it.image);
      r.mask_path = "/masks/" + mask_key(cell, size, size) + "/" + std::to_string(it.image);
      r.sample_path = "/samples/" + cell.key() + "/" + std::to_string(it.image) + "_" +
                      std::to_string(it.sample);
      store_sample_images(
          *h5, cell, r, st.images.item(cell.dataset, it.image).image,
          st.images.mask(cell, it.image), o.sample,
          static_cast<int64_t>(experiment_sample_seed(cell.seed, it.image, it.sample)),
          st.options.float_samples);
      r.status = "ok";
      r.seconds = o.seconds;
      r.forwards = o.evals.forwards;
      r.backwards = o.evals.backwards;
      r.nonfinite_grads = o.nonfinite_grads;
      if (o.nonfinite_grads > 0) warn_nonfinite(o.nonfinite_grads);
      r.peak_memory = o.peak;
      r.scores = std::move(o.scores);
      ++summary.ok;
      records.push_back(std::move(r));
    }
    if (h5) h5->close();  // flushed and closed: a write error surfaces here, once
    return records;
  }

  /// Room for the batch's images (uncompressed) and HDF5's metadata, checked before the file is
  /// touched: a full disk must not damage what it holds (no journal).
  std::unique_ptr<ResultsH5> open_for_batch(const std::vector<Outcome>& outcomes) const {
    uint64_t need = 64 * 1024;
    for (const auto& oc : outcomes)
      if (oc.ok)
        need +=
            (3 * 2 + (st.options.float_samples ? 8 : 0)) * static_cast<uint64_t>(oc.sample.numel());
    require_free_space(st.paths.h5, need);
    return std::make_unique<ResultsH5>(st.paths.h5, ResultsH5::Mode::kWrite);
  }
};

/// What a resume found: the items to run, the stored samples that lack a metric, and why.
struct ResumePlan {
  std::map<int64_t, std::vector<Item>> pending;  ///< by cell index
  /// Ok rows kept that lack a metric, by cell index.
  std::map<int64_t, std::vector<SampleRecord>> unscored;
  int64_t missing = 0;     ///< ok rows whose images do not read back
  int64_t mismatched = 0;  ///< rows whose input changed
  std::string first_mismatch;
  /// Ok rows stored without input hashes (before schema 3) that matched: their hashes to store.
  std::vector<SampleRecord> checked_old;
};

/// Why the stored row `r` of `cell` no longer belongs to its input ("" when it does): the image
/// id, the image's pixels or the mask's bits differ from what the row was computed from (rows
/// stored before the hashes are checked against the reference and mask stored for them). An
/// error row of an image that still cannot be read belongs to it.
std::string input_mismatch(const SampleRecord& r, const ExperimentCell& cell, ImageSource& images,
                           StoredImages& stored) {
  const ImageIdentity& now = images.identity(cell.dataset, r.image_index);
  const std::string where = cell.label() + ", image " + std::to_string(r.image_index);
  if (now.sha256.empty()) {
    return r.status == "ok" ? where + " ('" + r.image_id + "') cannot be read any more" : "";
  }
  if (r.image_id != now.id) return where + " was '" + r.image_id + "', now '" + now.id + "'";
  const bool ok = r.status == "ok";
  const std::string image = !r.image_sha256.empty() ? r.image_sha256
                            : ok                    ? stored.input_sha256(r, false)
                                                    : "";
  if (!image.empty() && image != now.sha256) return where + " ('" + now.id + "') has new pixels";
  const std::string mask = !r.mask_sha256.empty() ? r.mask_sha256
                           : ok                   ? stored.input_sha256(r, true)
                                                  : "";
  if (!mask.empty() && mask != images.mask_hash(cell, r.image_index))
    return where + ": its " + cell.mask + " mask changed";
  return "";
}

/// Whether ok row `r` lacks a score of one of `metrics` (stored names).
bool lacks_metric(const SampleRecord& r, const std::vector<std::string>& metrics) {
  for (const auto& m : metrics) {
    if (std::none_of(r.scores.begin(), r.scores.end(),
                     [&](const ScoreRecord& sc) { return sc.metric == m; }))
      return true;
  }
  return false;
}

/// The samples of this shard still to run: not committed in SQLite; committed as ok but with
/// images that do not read back; or committed for an input that changed since (input_mismatch).
/// Ok rows kept that lack one of `metrics` are listed for scoring.
ResumePlan find_pending(const Experiment& ex, const RunInputs& in, ImageSource& images,
                        const std::vector<std::string>& metrics, const RunOptions& options,
                        const ResultPaths& paths, ResultsDb* db,
                        std::map<int64_t, int64_t>* cell_ids, RunSummary* summary) {
  StoredImages stored(paths.dir, paths.h5);
  stored.check_own();
  ResumePlan plan;
  std::map<std::pair<int64_t, int64_t>, SampleRecord> rows;
  std::map<std::pair<int64_t, int64_t>, std::string> status;
  int64_t status_cell = -1;
  for_each_selected(
      ex, in.images, options.shard_index, options.shard_count,
      [&](const ExperimentCell& cell, int64_t i, int64_t s) {
        if (status_cell != cell.index) {
          status_cell = cell.index;
          (*cell_ids)[cell.index] = db->ensure_cell(cell_record(cell));
          rows = db->sample_rows((*cell_ids)[cell.index]);
          status.clear();
          for (const auto& [k, r] : rows) status[k] = resume_status(r);
        }
        ++summary->selected;
        std::string why;
        if (!is_done(status, i, s, options)) {
          plan.pending[cell.index].push_back({i, s});
        } else if (status.at({i, s}) == "ok" && !stored.readable(rows.at({i, s}))) {
          ++plan.missing;
          plan.pending[cell.index].push_back({i, s});
        } else if (!(why = input_mismatch(rows.at({i, s}), cell, images, stored)).empty()) {
          if (plan.mismatched++ == 0) plan.first_mismatch = why;
          plan.pending[cell.index].push_back({i, s});
        } else {
          ++summary->skipped;
          SampleRecord r = rows.at({i, s});
          if (r.status == "ok" && r.image_sha256.empty()) {
            r.image_sha256 = images.identity(cell.dataset, i).sha256;
            r.mask_sha256 = images.mask_hash(cell, i);
            plan.checked_old.push_back(r);
          }
          if (r.status == "ok" && lacks_metric(r, metrics)) plan.unscored[cell.index].push_back(r);
        }
      });
  return plan;
}

/// Finds what this shard has to do, verifying what is stored: a results.h5 whose stored samples
/// do not all read back is rebuilt from what does (a dataset that does not read back may not be
/// replaceable either: HDF5 cannot unlink an object whose header is damaged), then looked at
/// again. Stored samples whose input changed are recomputed (README: resuming).
ResumePlan plan_pending(const Experiment& ex, const RunInputs& in, ImageSource& images,
                        const RunOptions& options, const ResultPaths& paths, ResultsDb& db,
                        std::map<int64_t, int64_t>* cell_ids, RunSummary* summary) {
  std::vector<std::string> metrics;
  for (const auto& m : in.metrics) metrics.push_back(m->name());
  ResumePlan plan = find_pending(ex, in, images, metrics, options, paths, &db, cell_ids, summary);
  std::error_code exists_ec;
  if (plan.missing > 0 && fs::exists(paths.h5, exists_ec)) {
    const SalvageSummary s = salvage_h5(paths.h5);
    log_warn("run " + ex.name + ": rebuilt " + fs::path(paths.h5).filename().string() +
             " from its " + std::to_string(s.kept) + " readable dataset(s), " +
             std::to_string(s.dropped) + " unreadable one(s) dropped");
    summary->selected = summary->skipped = 0;
    plan = find_pending(ex, in, images, metrics, options, paths, &db, cell_ids, summary);
  }
  if (plan.missing > 0) {
    log_warn("run " + ex.name + ": " + std::to_string(plan.missing) +
             " stored sample(s) missing from " + fs::path(paths.h5).filename().string() +
             " (or unreadable): recomputing them");
  }
  if (plan.mismatched > 0) {
    log_warn("run " + ex.name + ": " + std::to_string(plan.mismatched) +
             " stored sample(s) no longer belong to their input (first: " + plan.first_mismatch +
             "): recomputing them");
  }
  summary->mismatched = plan.mismatched;
  db.set_input_hashes(plan.checked_old);
  return plan;
}

/// Stores the fingerprint of every (dataset, mask) input set of the grid (all its images, not
/// only this shard's: shards agree), hashing the inputs not hashed yet.
void record_input_sets(const Experiment& ex, const RunInputs& in, ImageSource& images,
                       ResultsDb& db, int64_t run_id) {
  const int64_t size = in.model->image_size();
  std::set<std::pair<std::string, std::string>> done;
  for (const auto& cell : ex.cells) {
    InputSetRecord r;
    r.dataset = cell.dataset;
    r.dataset_key = dataset_key(cell.dataset, cell.dataset_settings);
    r.mask = cell.mask;
    r.mask_key = mask_key(cell, size, size);
    if (!done.insert({r.dataset_key, r.mask_key}).second) continue;
    std::vector<InputHash> items;
    for (int64_t i = 0; i < in.images.at(cell.dataset); ++i) {
      items.push_back({images.identity(cell.dataset, i).sha256, images.mask_hash(cell, i)});
      r.unreadable += items.back().image.empty();
    }
    r.images = static_cast<int64_t>(items.size());
    r.fingerprint = input_set_fingerprint(items);
    r.run_id = run_id;
    db.write_input_set(r);
    log_debug("inputs " + r.dataset_key + " x " + r.mask_key + ": sha256 " + r.fingerprint);
  }
}

/// Scores the metrics that stored ok samples lack (a metric added to the experiment since they
/// ran): from the stored float32 sample when the run stored one (`--float-samples`: the scores
/// are those of the method's output), else from the stored uint8 sample; the reference and the
/// mask are the dataset's and the mask generator's (checked against the stored hashes first).
/// A metric that cannot score a sample (warned about) stays missing and is tried again next time.
/// The scores of the metrics ok row `r` lacks, for its stored `sample` (each metric that fails is
/// warned about once per cell, through `warned`).
std::vector<ScoreRecord> missing_scores(const std::vector<std::unique_ptr<Metric>>& metrics,
                                        const SampleRecord& r, const at::Tensor& sample,
                                        const at::Tensor& ref, const at::Tensor& mask,
                                        const std::string& label, std::set<std::string>* warned) {
  std::vector<ScoreRecord> out;
  for (const auto& metric : metrics) {
    if (!lacks_metric(r, {metric->name()})) continue;
    try {
      const double v = metric->score(sample, ref, mask)
                           .to(at::kCPU, at::kDouble)
                           .reshape({-1})[0]
                           .item<double>();
      out.push_back({metric->name(), v, metric->higher_is_better()});
    } catch (const UsageError&) {
      throw;
    } catch (const std::exception& e) {
      if (warned->insert(metric->name()).second)
        log_warn(label + ": metric " + metric->name() + " not scored: " + e.what());
    }
  }
  return out;
}

void score_stored(RunState& st, const std::map<int64_t, std::vector<SampleRecord>>& unscored) {
  StoredImages stored(st.paths.dir, st.paths.h5);
  int64_t n = 0, from_uint8 = 0;
  for (const auto& [cell_index, rows] : unscored) {
    const ExperimentCell& cell = st.ex.cells[cell_index];
    std::vector<std::pair<int64_t, ScoreRecord>> scores;
    std::set<std::string> warned;
    for (const SampleRecord& r : rows) {
      bool exact = false;
      const at::Tensor sample = stored.sample(r, &exact).unsqueeze(0).to(st.device);
      const at::Tensor ref = st.images.item(cell.dataset, r.image_index).image.unsqueeze(0);
      const at::Tensor mask = st.images.mask(cell, r.image_index).unsqueeze(0);
      const std::vector<ScoreRecord> added = missing_scores(
          st.in.metrics, r, sample, ref.to(st.device), mask.to(st.device), cell.label(), &warned);
      for (const auto& sc : added) scores.push_back({r.id, sc});
      n += !added.empty();
      from_uint8 += !added.empty() && !exact;
    }
    st.db.add_scores(scores);
  }
  st.summary.rescored = n;
  if (n == 0) return;
  log_info("run " + st.ex.name + ": scored " + std::to_string(n) +
           " stored sample(s) for metrics they lacked (" + std::to_string(from_uint8) +
           " from their uint8 images, " + std::to_string(n - from_uint8) + " from float32)");
}

/// A shard index in [0, count) of count >= 1, or a UsageError.
void check_shard(const RunOptions& options) {
  if (options.shard_count < 1 || options.shard_index < 0 ||
      options.shard_index >= options.shard_count) {
    throw UsageError("bad shard " + std::to_string(options.shard_index) + "/" +
                     std::to_string(options.shard_count));
  }
}

/// Creates the results folder (and its parents), or an InputError.
void create_results_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw InputError("cannot create results folder '" + dir + "'");
}

/// " [shard i/n]" for a shard of several; empty otherwise.
std::string shard_label(const RunOptions& options) {
  return options.shard_count > 1 ? " [shard " + std::to_string(options.shard_index) + "/" +
                                       std::to_string(options.shard_count) + "]"
                                 : "";
}

/// The progress status of a cell: "method [variant] / mask" (and " / seed N" with several).
std::string progress_status(const Experiment& ex, const ExperimentCell& cell) {
  const std::string variant = cell.axes_label();
  return cell.method + (variant.empty() ? "" : " [" + variant + "]") + " / " + cell.mask +
         (ex.seeds.size() > 1 ? " / seed " + std::to_string(cell.seed) : "");
}

/// Notes a stop request after a batch: --stop-after reached, or SIGTERM/SIGINT received (warned
/// about; the run stops after the batch in progress).
void check_stop(RunState& st) {
  RunSummary& summary = st.summary;
  if (st.options.testing.stop_after >= 0 && st.stored >= st.options.testing.stop_after)
    summary.stopped = true;
  if (st.stop_signals.signal() != 0) {
    summary.stopped = true;
    summary.stop_signal = st.stop_signals.signal();
    log_warn("run " + st.ex.name + ": " + strsignal(summary.stop_signal) + " (signal " +
             std::to_string(summary.stop_signal) + "): stopping after the batch in progress, " +
             std::to_string(st.stored) + " sample(s) stored; rerun (or requeue) to resume");
  }
}

/// Commits the rows of a group whose images are in HDF5 (--crash-after ends the process just
/// before), advances the progress and checks for a stop request.
void commit_group(RunState& st, const ExperimentCell& cell, int64_t n,
                  const std::vector<SampleRecord>& records) {
  st.in_h5 += n;
  if (st.options.testing.crash_after >= 0 && st.in_h5 >= st.options.testing.crash_after) {
    std::fflush(nullptr);
    std::_Exit(kCrashExitCode);  // fault injection: the rows were never committed
  }
  st.db.write_samples(records);
  st.stored += n;
  st.bar.advance(n, static_cast<double>(n) * sample_cost(cell), progress_status(st.ex, cell));
  check_stop(st);
}

/// A cell's batch size: the configured one until a batch runs out of device memory, then the
/// size that fit, for the rest of the cell.
struct BatchFit {
  size_t size = 1;
  size_t configured = 1;
  bool reduced = false, logged = false;
};

/// The line that stops a run on a device failure: what failed, where, and what to change.
DeviceError device_stop(const RunState& st, const ExperimentCell& cell, const std::exception& e,
                        DeviceFault fault) {
  const std::string where =
      "run " + st.ex.name + ", cell " + cell.label() + " on " + describe_device(st.device) + ": ";
  const std::string tail = "; stopped, " + std::to_string(st.stored) +
                           " sample(s) stored by this run, samples not tried are not stored "
                           "(rerun to resume)";
  if (fault == DeviceFault::kOutOfMemory) {
    return DeviceError(where + "out of memory at batch size 1 (" + error_first_line(e) +
                       "; batch_size " + std::to_string(st.ex.batch_size) +
                       (st.ex.batch_size == 1 ? "" : ", split down to 1") +
                       "): use less memory per sample with --set " + st.ex.model +
                       ".grad_checkpoint=true (copaint, dps) or --precision bf16|fp16, or a GPU "
                       "with more memory" +
                       tail);
  }
  return DeviceError(where + "CUDA error (" + error_first_line(e) +
                     "): the device may be unusable until the process ends" + tail);
}

/// Runs a group with the retry policy. On a device failure: out of memory with more than one
/// sample halves the cell's batch size and returns false (the caller runs the group again in
/// smaller batches); out of memory at one sample, or any other CUDA error, stops the run
/// (DeviceError): nothing of the group is stored.
bool run_fitting(CellRun& c, const std::vector<Item>& group, BatchFit& fit,
                 std::vector<Outcome>* outcomes) {
  try {
    *outcomes = c.run_with_retry(group);
  } catch (const UsageError&) {
    throw;
  } catch (const std::exception& e) {
    const DeviceFault fault = device_fault(e);
    if (fault == DeviceFault::kNone) throw;
    if (fault == DeviceFault::kCuda || group.size() <= 1) throw device_stop(c.st, c.cell, e, fault);
    fit.size = std::max<size_t>(1, group.size() / 2);
    fit.reduced = true;
    cuda_empty_cache();
    return false;
  }
  if (fit.reduced && !fit.logged) {
    fit.logged = true;
    log_warn(c.cell.label() + ": batch size " + std::to_string(fit.configured) +
             " ran out of memory on " + describe_device(c.st.device) + "; " +
             std::to_string(fit.size) + " fits and is kept for the rest of the cell");
  }
  return true;
}

/// Runs the pending items of one cell, batch by batch; each batch's images are stored (HDF5,
/// closed) first, then its rows in one transaction. A method that cannot be built makes each
/// sample an error. A batch that runs out of device memory is split (run_fitting).
void run_cell(RunState& st, int64_t cell_index, const std::vector<Item>& items) {
  CellRun c{st, st.ex.cells[cell_index], st.cell_ids.at(cell_index), nullptr, ""};
  log_debug("cell " + std::to_string(cell_index) + ": " + c.cell.label());
  try {
    c.method = Registry<Method>::global().create(c.cell.method, c.cell.method_settings);
  } catch (const std::exception& e) {
    c.method_error = e.what();
  }
  BatchFit fit;
  fit.size = fit.configured =
      st.ex.batch_size == 0 ? items.size() : static_cast<size_t>(st.ex.batch_size);
  for (size_t first = 0; first < items.size() && !st.summary.stopped;) {
    const std::vector<Item> group(items.begin() + first,
                                  items.begin() + std::min(items.size(), first + fit.size));
    std::vector<Outcome> outcomes;
    if (!run_fitting(c, group, fit, &outcomes)) continue;  // out of memory: smaller batches
    const std::vector<SampleRecord> records = c.store_images(group, outcomes, st.summary);
    commit_group(st, c.cell, static_cast<int64_t>(group.size()), records);
    first += group.size();
  }
}

/// The metrics over a set of every complete cell of the grid (set_scores.h): computed for cells
/// completed now, by an earlier run or a resume, and kept where their images are unchanged.
void score_sets(RunState& st) {
  if (st.in.set_metrics.empty()) return;
  SetScoreRequest req;
  req.dir = st.paths.dir;
  req.images = st.in.images;
  req.samples = st.ex.samples;
  for (const auto& cell : st.ex.cells) req.cell_keys.insert(cell.key());
  req.device = st.device;
  req.run_id = st.run_id;
  st.summary.set_scores = update_set_scores(st.db, req, st.in.set_metrics).scored;
}

/// Marks the run failed after the error that ended it.
void mark_failed(RunProgress& bar, ResultsDb& db, int64_t run_id, const std::exception& e) {
  bar.finish("failed");
  try {
    db.finish_run(run_id, utc_timestamp(), std::string("failed: ") + e.what());
  } catch (const std::exception&) {
    // A full disk fails this update too: the error that ended the run is the one to report
    // (the run stays `running`, which a resume treats the same as `failed`).
  }
}

}  // namespace

RunSummary run_experiment(const Experiment& experiment, const RunOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  check_shard(options);
  const c10::Device device = parse_device(options.device);
  const CurrentCudaDevice current_device(device);  // cuda:N is the current device for the run
  const Experiment ex = with_run_precision(experiment, device);
  RunSummary summary;
  const std::string dir = options.out_dir.empty() ? default_results_dir(ex) : options.out_dir;
  summary.paths = result_paths(dir, options.shard_index, options.shard_count);
  const ResultPaths& paths = summary.paths;

  // Open resources: everything that can fail on configuration or files, before any work.
  RunInputs in = open_inputs(ex, device);
  create_results_folder(dir);
  FileLock lock(results_lock_path(paths.db),
                "another `copaint run` or `copaint merge` is writing these results (give each "
                "process its own --shard or --out)");
  ResultsDb db(paths.db, true);
  const RunRecord record = make_run_record(ex, options, device, *in.model);
  salvage_after_abnormal_end(db, paths, record.shard, ex.name);

  // Plan: what this shard has to do, checking each stored sample's input.
  ImageSource images(ex, in, in.model->channels(), in.model->image_size());
  images.check_first_images();
  std::map<int64_t, int64_t> cell_ids;
  const ResumePlan plan = plan_pending(ex, in, images, options, paths, db, &cell_ids, &summary);
  const auto& pending = plan.pending;
  const int64_t to_run = summary.selected - summary.skipped;
  const int64_t run_id = db.add_run(record);
  log_info("experiment " + ex.name + ": " + std::to_string(summary.selected) + " samples, " +
           std::to_string(summary.skipped) + " already stored, " + std::to_string(to_run) +
           " to run -> " + paths.db);
  record_input_sets(ex, in, images, db, run_id);

  // Run and store, cell by cell.
  double cost = 0;
  for (const auto& [cell_index, items] : pending)
    cost += static_cast<double>(items.size()) * sample_cost(ex.cells[cell_index]);
  RunProgress bar(to_run, cost, "run " + ex.name + shard_label(options), options.progress_seconds,
                  options.progress_lines);
  StopSignals stop_signals(options.handle_signals);
  RunState st{ex, options,  paths,  device,  in,  images,
              db, cell_ids, run_id, summary, bar, stop_signals};
  try {
    score_stored(st, plan.unscored);
    for (const auto& [cell_index, items] : pending) {
      if (summary.stopped) break;
      run_cell(st, cell_index, items);
    }
    if (!summary.stopped) score_sets(st);
  } catch (const std::exception& e) {
    mark_failed(bar, db, run_id, e);
    throw;
  }
  bar.finish(summary.stopped ? "stopped" : "finished");
  db.finish_run(run_id, utc_timestamp(), summary.stopped ? "stopped" : "finished");
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace copaint
