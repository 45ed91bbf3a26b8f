// The results lock: an exclusive, non-waiting flock on "<database>.lock" held by every process
// that writes a results database and its HDF5 file (`copaint run`, `score`, `merge`), so two
// writers never interleave, and `merge` never reads a shard while its run is writing it.
#pragma once

#include <string>

namespace copaint {

class FileLock {
 public:
  /// Locks `path` (created when missing) or throws InputError: "'<path>' is locked: <busy>".
  FileLock(const std::string& path, const std::string& busy);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

/// The lock file of a results database: "<db>.lock".
inline std::string results_lock_path(const std::string& db) { return db + ".lock"; }

}  // namespace copaint
