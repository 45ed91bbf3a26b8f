// Finding an experiment's result files and merging shard outputs into one database and HDF5 file.
//
// Crash safety: the merged HDF5 file is built beside the output (a copy of the existing
// results.h5, or a new file, named results.h5.tmp-<pid>), the new images are copied into it and
// read back, it is synced and renamed over results.h5; only then are the rows committed to
// SQLite in one transaction. A kill or a full disk at any point leaves the previous results.h5
// and database as they were (at worst a results.h5 with extra, unreferenced images, replaced by
// the next merge), so an earlier completed merge is never damaged. Merging again is idempotent:
// run rows are matched by their identity (name, configuration, shard, start, host, command
// line) and never duplicated, sample rows by (cell, image, sample).
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

/// The shard databases a set of inputs lacks: for every folder holding some
/// results.shard-i-of-n.sqlite, the paths of the shards 0..n-1 that are not among `dbs`.
std::vector<std::string> missing_shards(const std::vector<std::string>& dbs);

struct MergeSummary {
  int64_t inputs = 0;      ///< databases read
  int64_t cells = 0;       ///< cells in the merged database
  int64_t copied = 0;      ///< sample rows copied
  int64_t duplicates = 0;  ///< rows already present (kept as they were)
  int64_t unreadable = 0;  ///< ok rows left out: their image cannot be read in the input's HDF5
  int64_t runs_added = 0;  ///< run rows added (runs merged before are matched, not added)
  std::vector<std::string> missing_shards;  ///< missing_shards(inputs), also warned about
  std::string db, h5;                       ///< the merged files
};

/// Merges `inputs` (databases with their HDF5 files beside them) into out_dir/results.sqlite and
/// out_dir/results.h5 (created or extended), holding the results lock of the output and of every
/// input (a run writing any of them makes the merge fail at once with InputError). Refuses,
/// before writing anything, inputs whose experiment names differ or whose latest configuration
/// hashes differ (from each other or from an existing merged database). A sample present in
/// several inputs is taken once: an ok row wins over an error row, else the first one read. An ok
/// row whose image cannot be read is left out with a warning (rerun its shard); missing shards
/// are warned about by name.
MergeSummary merge_results(const std::vector<std::string>& inputs, const std::string& out_dir);

}  // namespace copaint
