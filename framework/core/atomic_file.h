// Crash-safe file writes: a file is written under a temporary name beside its final path, synced
// to disk (fsync) and renamed over the final path, and the folder is synced; a kill at any point
// leaves either the old file or the new one, never a part. Every write, sync, close and rename is
// checked: a full disk (ENOSPC), an I/O error or a permission error is an InputError naming the
// file and the system's reason, and the temporary file is removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace copaint {

/// The temporary name used for `path` by this process: "<path>.tmp-<pid>".
std::string temp_path_for(const std::string& path);

/// Writes `size` bytes to `path` atomically (temporary file, fsync, rename, folder fsync).
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// Finishes a temporary file written by other code (e.g. an HDF5 library): fsync `tmp`, rename it
/// to `path`, fsync the folder. Removes `tmp` and throws InputError on failure.
void commit_temp_file(const std::string& tmp, const std::string& path);

/// Throws InputError("cannot write '<path>': No space left on device (...)") when the file
/// system holding `path` (or its folder, when `path` does not exist yet) has fewer than `bytes`
/// bytes available to this user. For writers without a journal (HDF5): refusing before the first
/// byte keeps a full disk from damaging what the file already holds. A file size limit
/// (RLIMIT_FSIZE) that the file would pass is refused the same way ("File too large").
void require_free_space(const std::string& path, uint64_t bytes);

/// fsync of a file or folder; InputError naming it on failure.
void sync_path(const std::string& path);

/// Fault injection for the tests: with COPAINT_FAULT_POINT=N in the environment, the N-th call
/// in this process kills it with SIGKILL, as `kill -9` at that instruction would (the calls sit
/// between the steps of every write: before and after data, sync, rename, commit). With
/// COPAINT_FAULT_POINT=list it prints "fault point <n>: <where>" to stderr at each call instead.
/// Without the variable it costs one branch.
void fault_point(const char* where);

/// Throws InputError("cannot write '<path>': <strerror(errno)>") (with `what` before the colon
/// when given).
[[noreturn]] void throw_write_error(const std::string& path, int error_number,
                                    const std::string& what = "cannot write");

}  // namespace copaint
