// Merging shard result files: checks, row copies with remapped ids, HDF5 dataset copies.
#include "experiments/merge.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "experiments/results_db.h"
#include "experiments/results_h5.h"
#include "framework/error.h"
#include "framework/log.h"

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

MergeSummary merge_results(const std::vector<std::string>& inputs_in, const std::string& out_dir) {
  MergeSummary summary;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  summary.db = (fs::path(out_dir) / "results.sqlite").string();
  summary.h5 = (fs::path(out_dir) / "results.h5").string();
  std::vector<std::string> inputs;
  for (const auto& in : inputs_in) {
    if (fs::exists(summary.db, ec) && fs::equivalent(in, summary.db, ec)) continue;
    inputs.push_back(in);
  }
  if (inputs.empty()) throw UsageError("merge: no input databases besides the output");

  // Check that everything belongs to one experiment and configuration.
  std::vector<std::unique_ptr<ResultsDb>> dbs;
  std::string name, hash, first;
  auto check = [&](const ResultsDb& db) {
    const auto runs = db.runs();
    for (const auto& r : runs) {
      if (name.empty()) {
        name = r.name;
        first = db.path();
      } else if (r.name != name) {
        throw InputError("merge: '" + db.path() + "' holds experiment '" + r.name + "' but '" +
                         first + "' holds '" + name + "'");
      }
    }
    if (runs.empty()) return;
    if (hash.empty()) {
      hash = runs.back().config_hash;
    } else if (runs.back().config_hash != hash) {
      throw InputError("merge: '" + db.path() + "' was last run with configuration " +
                       runs.back().config_hash + ", '" + first + "' with " + hash +
                       " (merge only shards of the same experiment file and --set values)");
    }
  };
  for (const auto& in : inputs) {
    dbs.push_back(std::make_unique<ResultsDb>(in, false));
    check(*dbs.back());
  }
  const bool out_exists = fs::is_regular_file(summary.db, ec);
  ResultsDb out(summary.db, true);
  if (out_exists) check(out);

  // Existing rows of the output: (cell key, image, sample) -> status.
  std::map<std::string, int64_t> out_cells;
  for (const auto& c : out.cells()) out_cells[c.key] = c.id;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::string> present;
  for (const auto& s : out.samples())
    present[{s.cell_id, s.image_index, s.sample_index}] = s.status;

  std::unique_ptr<ResultsH5> out_h5;
  for (auto& db : dbs) {
    ++summary.inputs;
    std::map<int64_t, int64_t> run_map, cell_map;
    for (const auto& r : db->runs()) run_map[r.id] = out.add_run(r);
    for (const auto& c : db->cells()) {
      auto it = out_cells.find(c.key);
      cell_map[c.id] = it != out_cells.end() ? it->second : (out_cells[c.key] = out.ensure_cell(c));
    }
    const fs::path in_dir = fs::path(db->path()).parent_path();
    std::map<std::string, std::unique_ptr<ResultsH5>> in_h5;
    std::vector<SampleRecord> records;
    for (auto s : db->samples()) {
      const auto key = std::make_tuple(cell_map.at(s.cell_id), s.image_index, s.sample_index);
      auto it = present.find(key);
      if (it != present.end() && (it->second == "ok" || s.status != "ok")) {
        ++summary.duplicates;
        continue;
      }
      s.cell_id = std::get<0>(key);
      s.run_id = run_map.count(s.run_id) ? run_map.at(s.run_id) : 0;
      if (s.status == "ok") {
        auto& src = in_h5[s.h5_file];
        if (!src) {
          src = std::make_unique<ResultsH5>((in_dir / s.h5_file).string(), ResultsH5::Mode::kRead);
        }
        if (!out_h5) out_h5 = std::make_unique<ResultsH5>(summary.h5, ResultsH5::Mode::kWrite);
        out_h5->copy_from(*src, s.sample_path);
        if (!s.reference_path.empty() && !out_h5->contains(s.reference_path))
          out_h5->copy_from(*src, s.reference_path);
        if (!s.mask_path.empty() && !out_h5->contains(s.mask_path))
          out_h5->copy_from(*src, s.mask_path);
        s.h5_file = fs::path(summary.h5).filename().string();
      }
      present[key] = s.status;
      records.push_back(std::move(s));
    }
    if (out_h5) out_h5->flush();  // images before rows, as the runner does
    out.write_samples(records);
    summary.copied += static_cast<int64_t>(records.size());
  }
  summary.cells = static_cast<int64_t>(out.cells().size());
  return summary;
}

}  // namespace copaint
