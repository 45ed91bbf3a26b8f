// Crash-safe file writes: temporary file, fsync, rename, folder fsync; every call checked.
#include "framework/core/atomic_file.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "framework/core/error.h"

namespace copaint {

std::string temp_path_for(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

void fault_point(const char* where) {
  static const char* spec = std::getenv("COPAINT_FAULT_POINT");
  if (!spec) return;
  static const bool list = std::strcmp(spec, "list") == 0;
  static const long target = list ? -1 : std::atol(spec);
  static std::atomic<long> count{0};
  const long n = ++count;
  if (list) {
    std::fprintf(stderr, "fault point %ld: %s\n", n, where);
  } else if (n == target) {
    std::fflush(nullptr);
    ::kill(::getpid(), SIGKILL);
  }
}

void throw_write_error(const std::string& path, int error_number, const std::string& what) {
  throw InputError(what + " '" + path + "': " + std::strerror(error_number));
}

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_write_error(path, errno, "cannot sync");
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    const int e = errno;
    ::close(fd);
    throw_write_error(path, e, "cannot sync");
  }
  ::close(fd);
}

namespace {

std::string parent_dir(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

}  // namespace

void require_free_space(const std::string& path, uint64_t bytes) {
  struct statvfs st {};
  std::error_code ec;
  const std::string where = std::filesystem::exists(path, ec) ? path : parent_dir(path);
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    const uintmax_t size =
        std::filesystem::is_regular_file(path, ec) ? std::filesystem::file_size(path, ec) : 0;
    if (size + bytes > lim.rlim_cur) {
      throw InputError("cannot write '" + path + "': " + std::strerror(EFBIG) +
                       " (the file size limit is " + std::to_string(lim.rlim_cur / 1024) + " KiB)");
    }
  }
  if (::statvfs(where.c_str(), &st) != 0) return;  // unknown: the writes themselves are checked
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free_bytes >= bytes) return;
  throw InputError("cannot write '" + path + "': " + std::strerror(ENOSPC) + " (" +
                   std::to_string(free_bytes / 1024) + " KiB free, about " +
                   std::to_string(bytes / 1024) + " KiB needed)");
}

void commit_temp_file(const std::string& tmp, const std::string& path) {
  try {
    sync_path(tmp);
    fault_point("commit: temporary file synced, before rename");
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw_write_error(path, errno);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  fault_point("commit: renamed");
  sync_path(parent_dir(path));
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = temp_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_write_error(path, errno);
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  int error_number = 0;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error_number = n < 0 ? errno : ENOSPC;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  fault_point("atomic write: data written, not synced");
  if (error_number == 0 && ::fsync(fd) != 0) error_number = errno;
  if (::close(fd) != 0 && error_number == 0) error_number = errno;
  if (error_number != 0) {
    std::remove(tmp.c_str());
    throw_write_error(path, error_number);
  }
  fault_point("atomic write: synced, before rename");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error_number = errno;
    std::remove(tmp.c_str());
    throw_write_error(path, error_number);
  }
  sync_path(parent_dir(path));
}

}  // namespace copaint
