// Tests of device parsing and thread settings.
#include "framework/core/device.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <thread>

#include "framework/core/error.h"

namespace copaint {
namespace {

TEST(Device, ParsesCpuAndAuto) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  const auto a = parse_device("auto");
  EXPECT_EQ(a.is_cuda(), cuda_available());
}

TEST(Device, RejectsMalformedSpecs) {
  for (const char* bad : {"", "gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:0:1"}) {
    EXPECT_THROW(parse_device(bad), UsageError) << bad;
  }
}

TEST(Device, CudaWithoutGpuIsAUsageError) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is visible";
  EXPECT_THROW(parse_device("cuda"), UsageError);
  EXPECT_THROW(parse_device("cuda:1"), UsageError);
}

TEST(Device, ThreadCount) {
  const int before = at::get_num_threads();
  set_num_threads(0);
  EXPECT_EQ(at::get_num_threads(), before);
  set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_THROW(set_num_threads(-1), UsageError);
  // More threads than cores: warned and capped (100000 used to spawn that many threads).
  set_num_threads(100000);
  EXPECT_LE(at::get_num_threads(), static_cast<int>(std::thread::hardware_concurrency()));
  set_num_threads(before);
}

}  // namespace
}  // namespace copaint
