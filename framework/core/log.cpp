// Logging levels and the stderr progress bar.
#include "framework/core/log.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "framework/core/error.h"

namespace copaint {
namespace {
LogLevel g_level = LogLevel::kInfo;
int g_bar_override = -1;  // -1: decide by terminal, 0: off, 1: on
}  // namespace

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    default:
      return "quiet";
  }
}

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

LogLevel parse_log_level(const std::string& name) {
  for (LogLevel l :
       {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError, LogLevel::kQuiet}) {
    if (name == log_level_name(l)) return l;
  }
  throw UsageError("unknown log level '" + name + "'; valid: debug, info, warn, error, quiet");
}

void log(LogLevel level, const std::string& message) {
  if (level < g_level || level == LogLevel::kQuiet) return;
  std::cerr << "[" << log_level_name(level) << "] " << message << std::endl;
}

void ProgressBar::set_enabled(bool enabled) { g_bar_override = enabled ? 1 : 0; }

ProgressBar::ProgressBar(int64_t total, std::string label)
    : total_(total), label_(std::move(label)) {
  visible_ = g_bar_override == 1 ||
             (g_bar_override == -1 && isatty(fileno(stderr)) && g_level <= LogLevel::kInfo);
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(int64_t n, const std::string& status) {
  done_ += n;
  if (!status.empty()) status_ = status;
  draw(done_ >= total_);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (!visible_) return;
  draw(true);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

void ProgressBar::draw(bool force) {
  if (!visible_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  const double eta = done_ > 0 ? elapsed / done_ * (total_ - done_) : 0.0;
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %.0fs<%.0fs %s\033[K", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), elapsed, eta,
               status_.c_str());
  std::fflush(stderr);
}

}  // namespace copaint
