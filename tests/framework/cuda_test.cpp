// Tests of framework/core/torch_compat.h everywhere, and of the CUDA paths where a GPU is visible
// (skipped with a message otherwise): the fixture UNets per precision against fp32, the same
// samples on CPU and CUDA for the same seeds, peak-memory statistics. scripts/gpu_check.sh runs
// them as `--gtest_filter='Cuda*:TorchCompat*'` and reads the "[cuda]" lines they print.
#include "framework/core/torch_compat.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "datasets/masks.h"
#include "framework/core/device.h"
#include "framework/nn/denoisers.h"
#include "methods/copaint.h"
#include "methods/verify/fixture_io.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return ((x - y).norm() / y.norm()).item<double>();
}

TEST(TorchCompat, BuildFlagsAgree) {
  EXPECT_EQ(cuda_built(), !cuda_build_version().empty());
  EXPECT_GE(cuda_device_count(), 0);
  EXPECT_EQ(cuda_available(), cuda_device_count() > 0);
}

TEST(TorchCompat, Tf32SwitchReachesLibTorch) {
  set_cuda_tf32(true);
  EXPECT_TRUE(cuda_tf32_enabled());
  set_cuda_tf32(false);
  EXPECT_FALSE(cuda_tf32_enabled());
  set_cudnn_benchmark(true);
  EXPECT_TRUE(at::globalContext().benchmarkCuDNN());
  set_cudnn_benchmark(false);
  EXPECT_FALSE(at::globalContext().benchmarkCuDNN());
}

TEST(TorchCompat, CpuHasNoPeakMemoryAndSynchronizesTrivially) {
  EXPECT_EQ(cuda_peak_memory_bytes(at::Device(at::kCPU)), 0);
  cuda_reset_peak_memory(at::Device(at::kCPU));
  device_synchronize(at::Device(at::kCPU));
}

#define REQUIRE_CUDA()   \
  if (!cuda_available()) \
  GTEST_SKIP() << "no CUDA GPU visible (" << (cuda_built() ? "CUDA" : "CPU") << " build)"

/// The fixture nets (adm_tiny: scale-shift norm, res-block up/down; adm_tiny_cond: classes) on
/// CUDA: fp32 against guided-diffusion's recorded outputs, the other precisions against fp32.
TEST(CudaDevice, FixtureUNetsPerPrecision) {
  REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  for (const std::string name : {"adm_tiny", "adm_tiny_cond"}) {
    const std::string dir = fixtures::kFixtures + "/unet/";
    const UNetConfig config =
        unet_config_from_json(read_json(dir + name + "_config.json").at("config"));
    const auto io = read_pickled_dict(dir + name + "_io.pt").toGenericDict();
    const at::Tensor x = io.at("x").toTensor(), t = io.at("t").toTensor();
    const at::Tensor y = io.contains("y") ? io.at("y").toTensor().to(cuda) : at::Tensor();
    const at::Tensor ref = io.at("out").toTensor();
    at::Tensor fp32_out;
    for (const Precision p :
         {Precision::kFp32, Precision::kTf32, Precision::kBf16, Precision::kFp16}) {
      UNetRunOptions o;
      o.precision = p;
      auto d = UNetDenoiser::from_checkpoint(config, dir + name + ".pt", o);
      d->to(cuda);
      at::NoGradGuard no_grad;
      const at::Tensor out = d->forward(x.to(cuda), t.to(cuda), y).to(at::kCPU);
      EXPECT_EQ(out.scalar_type(), at::kFloat);
      if (p == Precision::kFp32) fp32_out = out;
      const double vs_ref = max_abs(out, ref), vs_fp32 = relative_error(out, fp32_out);
      std::printf("[cuda] %s %s: max abs vs reference %.3g, relative vs fp32 %.3g\n", name.c_str(),
                  precision_name(p), vs_ref, vs_fp32);
      if (p == Precision::kFp32) EXPECT_LE(vs_ref, 1e-4) << name;
      if (p == Precision::kTf32) EXPECT_LE(vs_fp32, 1e-2) << name;
      if (p == Precision::kBf16 || p == Precision::kFp16) EXPECT_LE(vs_fp32, 5e-2) << name;
    }
  }
  set_cuda_tf32(false);
}

/// Generators are CPU generators and noise is drawn on the CPU then moved, so a seed gives the
/// same sample on either device (up to the arithmetic's rounding).
TEST(CudaDevice, SameSamplesOnCpuAndCudaForTheSameSeeds) {
  REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  const std::string path = fixtures::kFixtures + "/unet/adm_tiny_trained.pt";
  auto cpu_model = UNetDenoiser::from_checkpoint(fixtures::tiny_config(), path);
  auto cuda_model = UNetDenoiser::from_checkpoint(fixtures::tiny_config(), path);
  cuda_model->to(cuda);
  CoPaintParams p;
  p.respacing = "20";
  p.eta = 0.5;  // draws noise every step
  CoPaint method(p);
  const auto run = [&](Denoiser& model, const at::Device& device) {
    InpaintInput in;
    in.image =
        (at::rand({2, 3, 32, 32}, at::make_generator<at::CPUGeneratorImpl>(3)) * 2 - 1).to(device);
    in.mask = half_mask(32, 32).unsqueeze(0).to(device);
    in.generators = {at::make_generator<at::CPUGeneratorImpl>(11),
                     at::make_generator<at::CPUGeneratorImpl>(12)};
    return method.run(model, in).sample.to(at::kCPU);
  };
  const at::Tensor a = run(*cpu_model, at::Device(at::kCPU)), b = run(*cuda_model, cuda);
  const double err = max_abs(a, b);
  std::printf("[cuda] copaint (eta 0.5, 20 steps, 2 samples) CPU vs CUDA: max abs %.3g\n", err);
  EXPECT_LE(err, 1e-3);
}

TEST(CudaDevice, PeakMemoryComesFromTheCachingAllocator) {
  REQUIRE_CUDA();
  const at::Device cuda(at::kCUDA, 0);
  cuda_reset_peak_memory(cuda);
  {
    const at::Tensor big = at::empty({64, 1024, 1024}, at::TensorOptions().device(cuda));
    device_synchronize(cuda);
  }
  const int64_t peak = cuda_peak_memory_bytes(cuda);
  std::printf("[cuda] peak after a 256 MiB tensor: %lld bytes\n", static_cast<long long>(peak));
  EXPECT_GE(peak, int64_t{256} << 20);
  cuda_reset_peak_memory(cuda);
  EXPECT_LT(cuda_peak_memory_bytes(cuda), int64_t{256} << 20);
}

}  // namespace
}  // namespace copaint
