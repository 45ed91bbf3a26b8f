// Finding an experiment's result files and merging shard outputs into one database and HDF5 file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace copaint {

/// The result databases of `dir_or_db`: the file itself, or a folder's results.sqlite and
/// results.shard-*.sqlite (sorted). Throws InputError when there are none.
std::vector<std::string> find_result_dbs(const std::string& dir_or_db);
/// find_result_dbs of every input, concatenated in order (the positional arguments of
/// `copaint report` and `copaint merge`).
std::vector<std::string> find_result_dbs(const std::vector<std::string>& dirs_or_dbs);

struct MergeSummary {
  int64_t inputs = 0;      ///< databases read
  int64_t cells = 0;       ///< cells in the merged database
  int64_t copied = 0;      ///< sample rows copied
  int64_t duplicates = 0;  ///< rows already present (kept as they were)
  std::string db, h5;      ///< the merged files
};

/// Merges `inputs` (databases with their HDF5 files beside them) into out_dir/results.sqlite and
/// out_dir/results.h5 (created or extended). Refuses, before writing anything, inputs whose
/// experiment names differ or whose latest configuration hashes differ (from each other or from
/// an existing merged database). A sample present in several inputs is taken once: an ok row
/// wins over an error row, else the first one read.
MergeSummary merge_results(const std::vector<std::string>& inputs, const std::string& out_dir);

}  // namespace copaint
