// Merging shard result files: locks, checks, a copy-on-write HDF5 output, deduplicated run rows
// and sample rows committed in one transaction (merge.h explains the crash safety).
#include "experiments/store/merge.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <tuple>

#include "experiments/store/file_lock.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "experiments/store/stored_images.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/log.h"

namespace copaint {
namespace fs = std::filesystem;

std::vector<std::string> find_result_dbs(const std::string& dir_or_db) {
  std::error_code ec;
  if (fs::is_regular_file(dir_or_db, ec)) return {dir_or_db};
  if (!fs::is_directory(dir_or_db, ec)) {
    throw InputError("results '" + dir_or_db + "': no such file or folder");
  }
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir_or_db, ec)) {
    const std::string name = e.path().filename().string();
    const bool main = name == "results.sqlite";
    const bool shard = name.rfind("results.shard-", 0) == 0 && e.path().extension() == ".sqlite";
    if (e.is_regular_file() && (main || shard)) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) {
    throw InputError("results folder '" + dir_or_db +
                     "' holds no results.sqlite or results.shard-*.sqlite");
  }
  return out;
}

std::vector<std::string> find_result_dbs(const std::vector<std::string>& dirs_or_dbs) {
  std::vector<std::string> out;
  for (const auto& input : dirs_or_dbs) {
    for (auto& db : find_result_dbs(input)) out.push_back(std::move(db));
  }
  return out;
}

std::vector<std::string> missing_shards(const std::vector<std::string>& dbs) {
  static const std::regex kShard(R"(results\.shard-(\d+)-of-(\d+)\.sqlite)");
  std::map<std::pair<std::string, int64_t>, std::set<int64_t>> present;  // (folder, n) -> i
  for (const auto& db : dbs) {
    std::smatch m;
    const std::string name = fs::path(db).filename().string();
    if (!std::regex_match(name, m, kShard)) continue;
    present[{fs::path(db).parent_path().string(), std::stoll(m[2])}].insert(std::stoll(m[1]));
  }
  std::vector<std::string> out;
  for (const auto& [where, have] : present) {
    for (int64_t i = 0; i < where.second; ++i) {
      if (have.count(i)) continue;
      out.push_back((fs::path(where.first) / ("results.shard-" + std::to_string(i) + "-of-" +
                                              std::to_string(where.second) + ".sqlite"))
                        .string());
    }
  }
  return out;
}

namespace {

const char* kBusy =
    "a `copaint run` (or another merge) is writing these results; merge once it has finished";

/// Every input belongs to one experiment and its latest run to one configuration.
class SameExperiment {
 public:
  void check(const ResultsDb& db) {
    const auto runs = db.runs();
    for (const auto& r : runs) {
      if (name_.empty()) {
        name_ = r.name;
        first_ = db.path();
      } else if (r.name != name_) {
        throw InputError("merge: '" + db.path() + "' holds experiment '" + r.name + "' but '" +
                         first_ + "' holds '" + name_ + "'");
      }
    }
    if (runs.empty()) return;
    if (hash_.empty()) {
      hash_ = runs.back().config_hash;
    } else if (runs.back().config_hash != hash_) {
      throw InputError("merge: '" + db.path() + "' was last run with configuration " +
                       runs.back().config_hash + ", '" + first_ + "' with " + hash_ +
                       " (merge only shards of the same experiment file and --set values)");
    }
  }

 private:
  std::string name_, hash_, first_;
};

/// A sample row to copy, with where its images are.
struct Pending {
  SampleRecord row;
  std::string cell_key;
  size_t input = 0;
};

using SampleKey = std::tuple<std::string, int64_t, int64_t>;  // (cell key, image, sample)

/// Removes temporary files of merges that were killed (we hold the output's lock).
void remove_stale_temps(const std::string& h5) {
  std::error_code ec;
  const std::string stem = fs::path(h5).filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(fs::path(h5).parent_path(), ec)) {
    if (e.path().filename().string().rfind(stem, 0) == 0) fs::remove(e.path(), ec);
  }
}

}  // namespace

namespace {

/// The rows of the inputs not yet in the output (first ok row wins), in input order.
std::vector<Pending> plan_rows(const std::vector<std::unique_ptr<ResultsDb>>& dbs,
                               const ResultsDb& out, MergeSummary* summary) {
  std::map<int64_t, std::string> out_keys;
  for (const auto& c : out.cells()) out_keys[c.id] = c.key;
  std::map<SampleKey, std::string> present;  // -> status
  for (const auto& s : out.samples())
    present[{out_keys.at(s.cell_id), s.image_index, s.sample_index}] = s.status;
  std::vector<Pending> pending;
  std::map<SampleKey, size_t> at;  // pending rows by key
  for (size_t d = 0; d < dbs.size(); ++d) {
    std::map<int64_t, std::string> keys;
    for (const auto& c : dbs[d]->cells()) keys[c.id] = c.key;
    for (auto& s : dbs[d]->samples()) {
      const SampleKey key{keys.at(s.cell_id), s.image_index, s.sample_index};
      auto it = present.find(key);
      if (it != present.end() && (it->second == "ok" || s.status != "ok")) {
        ++summary->duplicates;
        continue;
      }
      present[key] = s.status;
      Pending p{std::move(s), std::get<0>(key), d};
      auto prev = at.find(key);
      if (prev != at.end()) {
        pending[prev->second] = std::move(p);  // an ok row replaces an error row
      } else {
        at[key] = pending.size();
        pending.push_back(std::move(p));
      }
    }
  }
  return pending;
}

/// Copies the images of the ok rows into a copy of `h5` and renames it over `h5` (merge.h).
/// Rows whose image cannot be read in their input are dropped from `pending` with a warning.
void write_merged_h5(const std::vector<std::unique_ptr<ResultsDb>>& dbs,
                     std::vector<Pending>* pending, const std::string& h5, MergeSummary* summary) {
  const bool any_ok = std::any_of(pending->begin(), pending->end(),
                                  [](const Pending& p) { return p.row.status == "ok"; });
  if (!any_ok) return;
  remove_stale_temps(h5);
  const std::string tmp = temp_path_for(h5);
  std::error_code ec;
  if (fs::exists(h5, ec)) {
    ResultsH5 check(h5, ResultsH5::Mode::kRead);  // a damaged output is reported, not copied
    check.close();
    fs::copy_file(h5, tmp, fs::copy_options::overwrite_existing, ec);
    fault_point("merge: results.h5 copied");
    if (ec) {
      std::remove(tmp.c_str());
      throw InputError("merge: cannot copy '" + h5 + "' to '" + tmp + "': " + ec.message());
    }
  }
  try {
    ResultsH5 out(tmp, ResultsH5::Mode::kWrite);
    std::map<std::string, std::unique_ptr<ResultsH5>> sources;
    std::map<std::string, int64_t> unreadable;  // per input HDF5 file
    std::vector<Pending> kept;
    std::vector<std::map<int64_t, CellRecord>> cells(dbs.size());  // per input, by id
    for (size_t d = 0; d < dbs.size(); ++d) {
      for (const auto& c : dbs[d]->cells()) cells[d][c.id] = c;
    }
    for (auto& p : *pending) {
      if (p.row.status == "ok") {
        const std::string src_path =
            (fs::path(dbs[p.input]->path()).parent_path() / p.row.h5_file).string();
        auto& src = sources[src_path];
        if (!src && !unreadable.count(src_path)) {
          try {
            src = std::make_unique<ResultsH5>(src_path, ResultsH5::Mode::kRead);
          } catch (const InputError& e) {
            log_warn("merge: " + std::string(e.what()));
          }
        }
        auto usable = [&](const std::string& path) {
          return path.empty() || out.readable(path) || (src && src->readable(path));
        };
        if (!src || !src->readable(p.row.sample_path) || !usable(p.row.reference_path) ||
            !usable(p.row.mask_path)) {
          ++unreadable[src_path];
          continue;
        }
        out.copy_from(*src, p.row.sample_path);
        // Its float32 copy (run --float-samples), when the shard has one.
        const std::string float_path = float_sample_path(p.row.sample_path);
        if (src->contains(float_path)) out.copy_from(*src, float_path);
        for (const std::string& path : {p.row.reference_path, p.row.mask_path}) {
          if (!path.empty() && !out.readable(path)) out.copy_from(*src, path);
        }
        describe_groups(out, cells[p.input].at(p.row.cell_id), p.row);  // copies carry none
        p.row.h5_file = fs::path(h5).filename().string();
      }
      kept.push_back(std::move(p));
    }
    out.close();
    for (const auto& [file, n] : unreadable) {
      if (n == 0) continue;
      summary->unreadable += n;
      log_warn("merge: " + std::to_string(n) + " stored sample(s) have no readable image in '" +
               file + "': not merged (rerun that shard to recompute them)");
    }
    *pending = std::move(kept);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_temp_file(tmp, h5);
}

/// Run rows (matched by identity, never duplicated), cells, input-set fingerprints, then every
/// sample row in one transaction.
void commit_rows(const std::vector<std::unique_ptr<ResultsDb>>& dbs,
                 const std::vector<Pending>& pending, ResultsDb* out, MergeSummary* summary) {
  std::map<std::string, RunRecord> existing;
  for (auto& r : out->runs()) existing[run_identity(r)] = r;
  std::vector<std::map<int64_t, int64_t>> run_map(dbs.size());
  std::map<std::string, int64_t> cell_ids;
  for (const auto& c : out->cells()) cell_ids[c.key] = c.id;
  for (size_t d = 0; d < dbs.size(); ++d) {
    for (const auto& r : dbs[d]->runs()) {
      auto it = existing.find(run_identity(r));
      if (it == existing.end()) {
        RunRecord added = r;
        added.id = out->add_run(r);
        ++summary->runs_added;
        it = existing.emplace(run_identity(r), added).first;
        fault_point("merge: run row added");
      } else if (it->second.status != r.status || it->second.finished != r.finished) {
        out->finish_run(it->second.id, r.finished, r.status);  // merged while it was running
        it->second.status = r.status;
        it->second.finished = r.finished;
      }
      run_map[d][r.id] = it->second.id;
    }
    for (const auto& c : dbs[d]->cells()) {
      if (!cell_ids.count(c.key)) cell_ids[c.key] = out->ensure_cell(c);
    }
    for (InputSetRecord set : dbs[d]->input_sets()) {  // the later input's replaces
      set.run_id = run_map[d].count(set.run_id) ? run_map[d].at(set.run_id) : 0;
      out->write_input_set(set);
    }
  }
  std::vector<SampleRecord> records;
  for (const auto& p : pending) {
    SampleRecord s = p.row;
    s.cell_id = cell_ids.at(p.cell_key);
    const auto& runs = run_map[p.input];
    s.run_id = runs.count(s.run_id) ? runs.at(s.run_id) : 0;
    records.push_back(std::move(s));
  }
  out->write_samples(records);
  summary->copied = static_cast<int64_t>(records.size());
}

/// The inputs other than the output itself, each once.
std::vector<std::string> distinct_inputs(const std::vector<std::string>& inputs,
                                         const std::string& out_db) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::error_code ec;
  for (const auto& in : inputs) {
    if (fs::exists(out_db, ec) && fs::equivalent(in, out_db, ec)) continue;
    const std::string canonical = fs::weakly_canonical(in, ec).string();
    if (seen.insert(canonical.empty() ? in : canonical).second) out.push_back(in);
  }
  return out;
}

}  // namespace

MergeSummary merge_results(const std::vector<std::string>& inputs_in, const std::string& out_dir) {
  MergeSummary summary;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec))
    throw InputError("merge: cannot create output folder '" + out_dir + "'");
  summary.db = (fs::path(out_dir) / "results.sqlite").string();
  summary.h5 = (fs::path(out_dir) / "results.h5").string();
  const std::vector<std::string> inputs = distinct_inputs(inputs_in, summary.db);
  if (inputs.empty()) throw UsageError("merge: no input databases besides the output");

  // The output's lock, then every input's: no run writes anything this merge reads or writes.
  std::vector<std::unique_ptr<FileLock>> locks;
  locks.push_back(std::make_unique<FileLock>(results_lock_path(summary.db), kBusy));
  for (const auto& in : inputs)
    locks.push_back(std::make_unique<FileLock>(results_lock_path(in), kBusy));

  summary.missing_shards = missing_shards(inputs);
  for (const auto& m : summary.missing_shards) {
    log_warn("merge: shard database '" + m +
             "' is missing: the merged results hold only the shards present (run that shard, "
             "then merge again)");
  }
  SameExperiment same;
  std::vector<std::unique_ptr<ResultsDb>> dbs;
  for (const auto& in : inputs) {
    dbs.push_back(std::make_unique<ResultsDb>(in, false));
    same.check(*dbs.back());
  }
  const bool out_exists = fs::is_regular_file(summary.db, ec);
  ResultsDb out(summary.db, true);
  if (out_exists) same.check(out);
  summary.inputs = static_cast<int64_t>(dbs.size());

  std::vector<Pending> pending = plan_rows(dbs, out, &summary);
  write_merged_h5(dbs, &pending, summary.h5, &summary);  // images first, then the rows
  commit_rows(dbs, pending, &out, &summary);
  summary.cells = static_cast<int64_t>(out.cells().size());
  return summary;
}

}  // namespace copaint
