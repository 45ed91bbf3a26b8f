// Tests of log levels and the progress bar's counting.
#include "framework/core/log.h"

#include <gtest/gtest.h>

#include "framework/core/error.h"

namespace copaint {
namespace {

TEST(Log, ParsesLevels) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(parse_log_level("quiet"), LogLevel::kQuiet);
  EXPECT_THROW(parse_log_level("verbose"), UsageError);
}

TEST(Log, FiltersBelowLevel) {
  const LogLevel before = log_level();
  set_log_level(LogLevel::kWarn);
  testing::internal::CaptureStderr();
  log_info("hidden");
  log_warn("shown");
  const std::string err = testing::internal::GetCapturedStderr();
  set_log_level(before);
  EXPECT_EQ(err, "[warn] shown\n");
}

TEST(Log, ProgressBarCountsAndDrawsWhenEnabled) {
  ProgressBar::set_enabled(true);
  testing::internal::CaptureStderr();
  {
    ProgressBar bar(4, "steps");
    bar.advance();
    bar.advance(3, "loss 0.5");
    EXPECT_EQ(bar.done(), 4);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  ProgressBar::set_enabled(false);
  EXPECT_NE(err.find("4/4"), std::string::npos) << err;
  EXPECT_NE(err.find("loss 0.5"), std::string::npos);
  testing::internal::CaptureStderr();
  {
    ProgressBar quiet(2, "x");
    quiet.advance(2);
  }
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace copaint
