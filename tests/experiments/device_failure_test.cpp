// Tests of device failures in a run, injected on the CPU: an out-of-memory splits the batch and
// the size that fit is kept for the rest of the cell; an out-of-memory at batch size 1 or a CUDA
// error stops the run (exit 1, one line naming what to change), nothing is stored for the samples
// not tried, and a rerun resumes to the rows of an uninterrupted run. Ordinary failures stay
// error rows.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <unistd.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "datasets/dataset.h"
#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/runner.h"
#include "experiments/report/report.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "methods/sampling.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

/// The faults the test method injects (set by each test; off by default).
struct Faults {
  int64_t fits = 1 << 20;        ///< a batch larger than this is out of memory
  int64_t oom_image = -1;        ///< a batch holding this image is out of memory, even alone
  int64_t cuda_image = -1;       ///< a batch holding this image fails with a CUDA error
  int64_t poison_image = -1;     ///< an ordinary failure of this image's samples
  int64_t nonfinite_image = -1;  ///< this image's samples report 2 non-finite gradient steps
  std::vector<int64_t> batches;  ///< the batch sizes the method was called with
};
Faults g_faults;

/// Image i of the synthetic dataset: first pixel -1 + 0.25 i.
int64_t image_index(const at::Tensor& image) {
  return std::lround((image[0][0][0].item<double>() + 1.0) / 0.25);
}

/// Known pixels copied, unknown ones the sample's own noise; fails as g_faults says.
class FaultyMethod : public Method {
 public:
  InpaintOutput run(Denoiser&, const InpaintInput& in) override {
    const int64_t b = in.image.size(0);
    g_faults.batches.push_back(b);
    for (int64_t k = 0; k < b; ++k) {
      const int64_t i = image_index(in.image[k]);
      if (i == g_faults.cuda_image)
        TORCH_CHECK(false, "CUDA error: an illegal memory access was encountered");
      if (i == g_faults.oom_image)
        TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 2 GiB");
      if (i == g_faults.poison_image) throw InputError("poisoned image");
    }
    if (b > g_faults.fits)
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 1 GiB");
    const at::Tensor m = in.mask.expand_as(in.image);
    InpaintOutput out;
    out.sample = in.image * m + (1 - m) * initial_noise(in).clamp(-1, 1);
    out.evals.forwards = 1;
    if (g_faults.nonfinite_image >= 0) {  // a method with gradients counts them per sample
      out.evals.nonfinite_grads = at::zeros({b}, at::kLong);
      for (int64_t k = 0; k < b; ++k)
        if (image_index(in.image[k]) == g_faults.nonfinite_image) out.evals.nonfinite_grads[k] = 2;
    }
    return out;
  }
  int64_t expected_forwards(int64_t) const override { return 1; }
};

/// size x size RGB images, image i's first pixel -1 + 0.25 i.
class MarkedDataset : public Dataset {
 public:
  MarkedDataset(int64_t count, int64_t side) : count_(count), side_(side) {}
  int64_t size() const override { return count_; }
  ImageItem get(int64_t i) const override {
    at::Tensor img = at::arange(3 * side_ * side_, at::kFloat)
                         .reshape({3, side_, side_})
                         .mul(0.37 * (i + 1))
                         .sin();
    img[0][0][0] = -1.0 + 0.25 * static_cast<double>(i);
    return {"m" + std::to_string(i), img, -1};
  }

 private:
  int64_t count_, side_;
};

const char* kExperiment =
    "name = faults\nmodel = gaussian\ndataset = marked\nmethods = faulty, blended\n"
    "masks = half\nsamples = 2\nmetrics = psnr\nbatch_size = 4\ngaussian.image_size = 8\n"
    "marked.count = 4\nblended.respacing = 5\n";

class DeviceRuns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    register_all();
    Registry<Method>::global().add({"faulty", "test method", {}, [](const Options&) {
                                      return std::unique_ptr<Method>(new FaultyMethod);
                                    }});
    Registry<Dataset>::global().add(
        {"marked", "test images", {{"count", "4", ""}, {"size", "8", ""}}, [](const Options& o) {
           return std::unique_ptr<Dataset>(
               new MarkedDataset(o.get_int("count"), o.get_int("size")));
         }});
  }
  void SetUp() override {
    g_faults = Faults{};
    dir_ = fs::temp_directory_path() /
           ("copaint_device_failures_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunOptions options(const std::string& out) const {
    RunOptions o;
    o.device = "cpu";
    o.out_dir = (dir_ / out).string();
    o.handle_signals = false;
    return o;
  }
  fs::path dir_;
};

int64_t count_rows(const std::string& db, const std::string& where = "1") {
  return std::stoll(ResultsDb(db, false).query_text("SELECT COUNT(*) FROM sample WHERE " + where));
}

/// (cell position, image, sample) -> status, psnr, the stored uint8 image.
std::map<std::tuple<int64_t, int64_t, int64_t>, std::tuple<std::string, double, at::Tensor>>
rows_of(const std::string& db) {
  const ResultSet rs = load_results({db});
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::tuple<std::string, double, at::Tensor>> out;
  for (const auto& s : rs.samples) {
    const double psnr = s.scores.empty() ? 0.0 : s.scores.front().value;
    at::Tensor img;
    if (s.status == "ok")
      img = ResultsH5(s.h5_file, ResultsH5::Mode::kRead).read_uint8(s.sample_path);
    out[{rs.cells[s.cell_id].position, s.image_index, s.sample_index}] = {s.status, psnr, img};
  }
  return out;
}

void expect_same(const std::string& a_db, const std::string& b_db) {
  const auto a = rows_of(a_db), b = rows_of(b_db);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, ra] : a) {
    ASSERT_TRUE(b.count(key));
    const auto& rb = b.at(key);
    EXPECT_EQ(std::get<0>(ra), std::get<0>(rb));
    EXPECT_DOUBLE_EQ(std::get<1>(ra), std::get<1>(rb));
    if (std::get<0>(ra) == "ok") EXPECT_TRUE(at::equal(std::get<2>(ra), std::get<2>(rb)));
  }
}

TEST(DeviceFault, ClassifiesOutOfMemoryCudaErrorsAndOrdinaryFailures) {
  try {
    TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried to allocate 20 MiB");
  } catch (const std::exception& e) {
    EXPECT_EQ(device_fault(e), DeviceFault::kOutOfMemory);
    EXPECT_EQ(error_first_line(e), "CUDA out of memory. Tried to allocate 20 MiB");
  }
  try {
    TORCH_CHECK(false, "CUDA error: device-side assert triggered\nCUDA kernel errors might be");
  } catch (const std::exception& e) {
    EXPECT_EQ(device_fault(e), DeviceFault::kCuda);
    EXPECT_EQ(error_first_line(e), "CUDA error: device-side assert triggered");
  }
  EXPECT_EQ(device_fault(std::runtime_error("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")),
            DeviceFault::kCuda);
  EXPECT_EQ(device_fault(std::runtime_error("CUDA out of memory.")), DeviceFault::kOutOfMemory);
  EXPECT_EQ(device_fault(InputError("poisoned image")), DeviceFault::kNone);
  EXPECT_EQ(device_fault(std::runtime_error("shape mismatch")), DeviceFault::kNone);
}

TEST_F(DeviceRuns, OutOfMemorySplitsTheBatchAndKeepsTheSizeThatFit) {
  const Experiment ex = parse_experiment(kExperiment, "faults.ini");
  const RunSummary full = run_experiment(ex, options("full"));
  ASSERT_EQ(full.ok, 16);
  g_faults = Faults{};
  g_faults.fits = 1;
  const RunSummary split = run_experiment(ex, options("split"));
  EXPECT_EQ(split.ok, 16);
  EXPECT_EQ(split.errors, 0);
  // The faulty cell (8 samples, batch_size 4): 4 fails, 2 fails, then batches of 1 only.
  const std::vector<int64_t> want = {4, 2, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(g_faults.batches, want);
  expect_same(full.paths.db, split.paths.db);
}

TEST_F(DeviceRuns, OutOfMemoryAtBatchSizeOneStopsTheRunAndARerunResumes) {
  const Experiment ex = parse_experiment(kExperiment, "faults.ini");
  const RunSummary full = run_experiment(ex, options("full"));
  g_faults = Faults{};
  g_faults.oom_image = 2;
  const RunOptions o = options("stopped");
  try {
    run_experiment(ex, o);
    FAIL() << "no DeviceError";
  } catch (const DeviceError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory at batch size 1"), std::string::npos) << what;
    EXPECT_NE(what.find("batch_size 4"), std::string::npos) << what;
    EXPECT_NE(what.find("gaussian.grad_checkpoint=true"), std::string::npos) << what;
    EXPECT_NE(what.find("--precision"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  // Images 0 and 1 (one batch of 4) are stored; nothing for the samples not tried, no error row.
  const std::string db = (fs::path(o.out_dir) / "results.sqlite").string();
  EXPECT_EQ(count_rows(db), 4);
  EXPECT_EQ(count_rows(db, "status = 'error'"), 0);
  const auto runs = ResultsDb(db, false).runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].status.rfind("failed: ", 0), 0u) << runs[0].status;

  g_faults = Faults{};
  const RunSummary resumed = run_experiment(ex, o);
  EXPECT_EQ(resumed.skipped, 4);
  EXPECT_EQ(resumed.ok, 12);
  expect_same(full.paths.db, db);
}

TEST_F(DeviceRuns, CudaErrorStopsAtOnceAndTheCliExitsOneWithOneLine) {
  const std::string ini = (dir_ / "faults.ini").string();
  std::ofstream(ini) << kExperiment;
  g_faults.cuda_image = 1;
  const std::string out_dir = (dir_ / "r").string();
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"--device", "cpu", "run", ini, "--out", out_dir}, out, err), 1);
  const std::string e = err.str();
  EXPECT_NE(e.find("CUDA error (CUDA error: an illegal memory access"), std::string::npos) << e;
  EXPECT_NE(e.find("rerun to resume"), std::string::npos) << e;
  // Not split, not retried sample by sample: one call, nothing stored.
  EXPECT_EQ(g_faults.batches, std::vector<int64_t>{4});
  const std::string db = (fs::path(out_dir) / "results.sqlite").string();
  EXPECT_EQ(count_rows(db), 0);

  g_faults = Faults{};
  EXPECT_EQ(run_cli({"--device", "cpu", "run", ini, "--out", out_dir}, out, err), 0) << err.str();
  EXPECT_EQ(count_rows(db, "status = 'ok'"), 16);
}

TEST_F(DeviceRuns, OrdinaryFailuresStayErrorRowsAndARetryResumesThem) {
  const Experiment ex = parse_experiment(kExperiment, "faults.ini");
  const RunSummary full = run_experiment(ex, options("full"));
  g_faults = Faults{};
  g_faults.poison_image = 3;
  g_faults.fits = 2;  // an out-of-memory and an ordinary failure in the same cell
  RunOptions o = options("errors");
  const RunSummary first = run_experiment(ex, o);
  EXPECT_EQ(first.ok, 14);
  EXPECT_EQ(first.errors, 2);
  const std::string db = first.paths.db;
  EXPECT_EQ(count_rows(db, "status = 'error' AND image_index = 3"), 2);
  EXPECT_EQ(count_rows(db, "error LIKE '%poisoned image%'"), 2);

  // A device failure stored as an error row by an older version (no stop then): a resume runs
  // it again, without --retry-failed; the sample's own failures stay skipped.
  {
    ResultsDb d(db, false);
    const std::string one =
        "(SELECT id FROM sample WHERE image_index = 0 AND sample_index = 1 AND status = 'ok' "
        "ORDER BY cell_id LIMIT 1)";
    d.exec("DELETE FROM score WHERE sample_id = " + one);
    d.exec(
        "UPDATE sample SET status = 'error', error = 'CUDA out of memory. Tried to allocate "
        "2.00 GiB' WHERE id = " +
        one);
  }
  g_faults = Faults{};
  const RunSummary resumed = run_experiment(ex, o);
  EXPECT_EQ(resumed.skipped, 15);
  EXPECT_EQ(resumed.ok, 1);
  EXPECT_EQ(count_rows(db, "status = 'error'"), 2);
  o.retry_failed = true;
  const RunSummary retried = run_experiment(ex, o);
  EXPECT_EQ(retried.skipped, 14);
  EXPECT_EQ(retried.ok, 2);
  expect_same(full.paths.db, db);
}

TEST(RunPrecision, AutoResolvesToHalfOnCudaForUseFp16Models) {
  Options o;
  o.set("precision", "auto");
  o.set("use_fp16", "true");
  const c10::Device cuda(c10::kCUDA, 0), cpu(c10::kCPU);
  EXPECT_EQ(resolve_auto_precision(o, cuda).get("precision"), "fp16");
  EXPECT_EQ(resolve_auto_precision(o, cpu).get("precision"), "auto");  // float32: key unchanged
  o.set("use_fp16", "false");
  EXPECT_EQ(resolve_auto_precision(o, cuda).get("precision"), "auto");
  o.set("precision", "bf16");
  EXPECT_EQ(resolve_auto_precision(o, cuda).get("precision"), "bf16");
  // The speed-only settings leave the key; the precision that ran stays in it.
  o.set("use_fp16", "true");
  o.set("precision", "auto");
  EXPECT_EQ(model_settings_for_results(resolve_auto_precision(o, cuda)).get("precision", ""),
            "fp16");
  EXPECT_EQ(model_settings_for_results(resolve_auto_precision(o, cpu)).get("precision", ""), "");
}

// A grid started in half precision (bf16 stands in for a GPU's fp16 on the CPU) and resumed in
// float32 stores the float32 samples in cells of their own; the report shows them apart.
TEST_F(DeviceRuns, AResumeInAnotherPrecisionStartsSeparateCells) {
  const std::string bundled = std::string(COPAINT_SOURCE_DIR) + "/experiments/bundled";
  const std::string ini = (dir_ / "prec.ini").string();
  std::ofstream(ini) << "name = prec\nmodel = adm\ndataset = marked\nmethods = blended\n"
                        "masks = half\nsamples = 1\nmetrics = psnr\nmarked.count = 1\n"
                        "marked.size = 32\nblended.respacing = 2\n";
  const std::vector<std::string> configs = {bundled + "/model.ini"};
  const std::string checkpoint = "adm.checkpoint=" + bundled + "/fashion_mnist_adm.pt";
  const Experiment half = load_experiment(ini, configs, {checkpoint, "adm.precision=bf16"});
  const Experiment full = load_experiment(ini, configs, {checkpoint});
  ASSERT_NE(half.cells[0].key(), full.cells[0].key());
  const RunOptions o = options("r");
  EXPECT_EQ(run_experiment(half, o).ok, 1);
  const RunSummary resumed = run_experiment(full, o);
  EXPECT_EQ(resumed.skipped, 0);  // nothing of the bf16 cell counts for the float32 one
  EXPECT_EQ(resumed.ok, 1);
  const ResultSet rs = load_results({resumed.paths.db});
  ASSERT_EQ(rs.cells.size(), 2u);
  std::ostringstream report;
  write_report(rs, ReportOptions{}, report);
  EXPECT_NE(report.str().find("adm (precision=bf16)"), std::string::npos) << report.str();
}

// Non-finite gradients (methods/gradients.h) are stored per sample (NULL for a method without
// gradients, 0 for a checked sample), warned once per cell, and marked by the report in its
// tables ([nf n]), its timing table and the CSV.
TEST_F(DeviceRuns, NonFiniteGradientsAreStoredWarnedOnceAndMarked) {
  const Experiment ex = parse_experiment(kExperiment, "faults.ini");
  g_faults.nonfinite_image = 1;
  ::testing::internal::CaptureStderr();
  const RunSummary run = run_experiment(ex, options("nf"));
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(run.ok, 16);
  const std::string db = run.paths.db;
  EXPECT_EQ(count_rows(db, "nonfinite_grads = 2"), 2);  // image 1's two samples
  EXPECT_EQ(count_rows(db, "nonfinite_grads = 0"), 6);
  EXPECT_EQ(count_rows(db, "nonfinite_grads IS NULL"), 8);  // blended takes no gradients
  size_t warnings = 0;
  for (size_t at = err.find("non-finite loss or gradient"); at != std::string::npos;
       at = err.find("non-finite loss or gradient", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 1u) << err;

  ReportOptions ro;
  ro.timing = true;
  std::ostringstream md, csv;
  write_report(load_results({db}), ro, md);
  EXPECT_NE(md.str().find(" [nf 2]"), std::string::npos) << md.str();
  EXPECT_NE(md.str().find("2 sample(s) met a non-finite loss or gradient at 4"), std::string::npos)
      << md.str();
  EXPECT_NE(md.str().find("| 2 (4 steps) |"), std::string::npos) << md.str();
  ro.format = "csv";
  write_report(load_results({db}), ro, csv);
  // The last column: samples with a non-finite gradient, empty for blended.
  std::istringstream lines(csv.str());
  int faulty = 0, blended = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find(",faulty,") != std::string::npos) faulty += line.substr(line.size() - 2) == ",2";
    if (line.find(",blended,") != std::string::npos) blended += line.back() == ',';
  }
  EXPECT_EQ(faulty, 1) << csv.str();  // one metric (psnr), one mask
  EXPECT_EQ(blended, 1) << csv.str();
}

}  // namespace
}  // namespace copaint
