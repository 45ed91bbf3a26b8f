// Logging with levels and a progress bar for long loops, both on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace copaint {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kQuiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
/// "debug", "info", "warn", "error", "quiet"; throws UsageError otherwise.
LogLevel parse_log_level(const std::string& name);
/// The name parse_log_level accepts.
const char* log_level_name(LogLevel level);

void log(LogLevel level, const std::string& message);
inline void log_debug(const std::string& m) { log(LogLevel::kDebug, m); }
inline void log_info(const std::string& m) { log(LogLevel::kInfo, m); }
inline void log_warn(const std::string& m) { log(LogLevel::kWarn, m); }
inline void log_error(const std::string& m) { log(LogLevel::kError, m); }

/// A one-line progress bar on stderr: shown only when stderr is a terminal and the log level is
/// info or lower; redrawn at most 10 times a second; the line is closed by finish() or on
/// destruction.
class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string label);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Moves `n` steps forward; `status` (e.g. "loss 0.12") is shown after the counter.
  void advance(int64_t n = 1, const std::string& status = "");
  void finish();
  int64_t done() const { return done_; }

  /// Forces bars on or off regardless of the terminal (tests, --quiet).
  static void set_enabled(bool enabled);

 private:
  void draw(bool force);
  int64_t total_;
  int64_t done_ = 0;
  std::string label_;
  std::string status_;
  bool visible_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace copaint
