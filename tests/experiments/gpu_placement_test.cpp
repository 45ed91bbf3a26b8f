// Tests of `run --jobs` on a node's GPUs, with faked device counts: the worker count (N, auto,
// --gpus), the round-robin placement through CUDA_VISIBLE_DEVICES, and the workers' command lines.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "experiments/app/cli.h"
#include "experiments/app/run_command.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

using Strings = std::vector<std::string>;

TEST(GpuPlacement, JobsCountFromNAutoAndTheGpuList) {
  EXPECT_EQ(jobs_count("", "auto", "", 8), 1);
  EXPECT_EQ(jobs_count("3", "cuda", "", 8), 3);
  EXPECT_EQ(jobs_count("auto", "cuda", "", 8), 8);
  EXPECT_EQ(jobs_count("auto", "auto", "", 4), 4);
  EXPECT_EQ(jobs_count("auto", "auto", "", 0), 1);  // the CPU: one process, as without --jobs
  EXPECT_EQ(jobs_count("auto", "cpu", "", 8), 1);
  EXPECT_EQ(jobs_count("auto", "cuda", "0,2,3", 8), 3);
  EXPECT_EQ(jobs_count("", "cuda", "0,2,3", 8), 3);
  EXPECT_EQ(jobs_count("6", "cuda", "0,2,3", 8), 6);
  EXPECT_THROW(jobs_count("0", "cpu", "", 0), UsageError);
  EXPECT_THROW(jobs_count("two", "cpu", "", 0), UsageError);
  EXPECT_THROW(jobs_count("2x", "cpu", "", 0), UsageError);
}

TEST(GpuPlacement, RoundRobinOverVisibleOrListedGpus) {
  EXPECT_EQ(place_workers(4, "cuda", "", 2, ""), (Strings{"0", "1", "0", "1"}));
  EXPECT_EQ(place_workers(8, "auto", "", 8, ""), (Strings{"0", "1", "2", "3", "4", "5", "6", "7"}));
  EXPECT_EQ(place_workers(4, "cuda", "0,2,3", 4, ""), (Strings{"0", "2", "3", "0"}));
  EXPECT_EQ(place_workers(2, "cuda:1", "", 2, ""), (Strings{"1", "1"}));
  // A parent restricted to GPUs 4 and 5 (SLURM): its index 1 is GPU 5 for the workers too.
  EXPECT_EQ(place_workers(3, "cuda", "", 2, "4,5"), (Strings{"4", "5", "4"}));
  EXPECT_EQ(place_workers(2, "cuda", "1", 2, "4,5"), (Strings{"5", "5"}));
  // The CPU: no placement.
  EXPECT_EQ(place_workers(2, "auto", "", 0, ""), (Strings{"", ""}));
  EXPECT_EQ(place_workers(2, "cpu", "", 4, ""), (Strings{"", ""}));
  EXPECT_THROW(place_workers(2, "cpu", "0", 4, ""), UsageError);
  EXPECT_THROW(place_workers(2, "cuda", "0,4", 4, ""), UsageError);  // not visible
  EXPECT_THROW(place_workers(2, "cuda", "a", 4, ""), UsageError);
  EXPECT_THROW(place_workers(2, "cuda", "", 0, ""), UsageError);
}

TEST(GpuPlacement, WorkerCommandLinesRunOnTheirOwnGpu) {
  std::ostringstream out, err;
  CommandContext ctx{
      {"exp.ini", "--jobs", "auto", "--gpus=0,2", "--out", "r"}, out, err, "cuda", ""};
  const Strings gpu = worker_argv(ctx, 1, 2, "2");
  ASSERT_GE(gpu.size(), 3u);
  EXPECT_EQ(gpu[1], "--device");
  EXPECT_EQ(gpu[2], "cuda");  // the only GPU it sees
  const std::string line = [&] {
    std::string s;
    for (const auto& a : gpu) s += a + " ";
    return s;
  }();
  EXPECT_NE(line.find(" run exp.ini --out r --shard 1/2 --progress-lines "), std::string::npos)
      << line;
  EXPECT_EQ(line.find("--jobs"), std::string::npos) << line;
  EXPECT_EQ(line.find("--gpus"), std::string::npos) << line;
  // On the CPU the worker keeps the global device.
  CommandContext cpu{{"exp.ini", "--jobs", "2"}, out, err, "cpu", "bf16"};
  const Strings c = worker_argv(cpu, 0, 2, "");
  EXPECT_EQ(c[2], "cpu");
  std::string cl;
  for (const auto& a : c) cl += a + " ";
  EXPECT_NE(cl.find("--precision bf16 run exp.ini --shard 0/2 --progress-lines"), std::string::npos)
      << cl;
}

TEST(GpuPlacement, GpusOnTheCpuIsAUsageError) {
  std::ostringstream out, err;
  EXPECT_EQ(
      run_cli({"--device", "cpu", "run", "exp.ini", "--jobs", "2", "--gpus", "0,1", "--dry-run"},
              out, err),
      2);
  EXPECT_NE(err.str().find("--gpus needs a CUDA device"), std::string::npos) << err.str();
  EXPECT_EQ(run_cli({"--device", "cpu", "run", "exp.ini", "--jobs", "x"}, out, err), 2);
}

}  // namespace
}  // namespace copaint
