// The LibTorch-version and CUDA-only calls declared in torch_compat.h.
#include "framework/core/torch_compat.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <cstdio>

#if COPAINT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace copaint {

bool cuda_built() { return COPAINT_WITH_CUDA != 0; }

std::string cuda_build_version() { return COPAINT_CUDA_VERSION; }

int cuda_device_count() {
  if (!at::hasCUDA()) return 0;
  return static_cast<int>(at::detail::getCUDAHooks().getNumGPUs());
}

void set_cuda_tf32(bool enabled) {
  auto& ctx = at::globalContext();
#if COPAINT_TORCH_AT_LEAST(2, 9)
  const auto p = enabled ? at::Float32Precision::TF32 : at::Float32Precision::IEEE;
  ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, p);
  ctx.setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV, p);
#else
  ctx.setAllowTF32CuBLAS(enabled);
  ctx.setAllowTF32CuDNN(enabled);
#endif
}

bool cuda_tf32_enabled() {
  const auto& ctx = at::globalContext();
#if COPAINT_TORCH_AT_LEAST(2, 9)
  return ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) ==
             at::Float32Precision::TF32 &&
         ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV) ==
             at::Float32Precision::TF32;
#else
  return ctx.allowTF32CuBLAS() && ctx.allowTF32CuDNN();
#endif
}

void set_cudnn_benchmark(bool enabled) { at::globalContext().setBenchmarkCuDNN(enabled); }

int64_t cuda_peak_memory_bytes(const c10::Device& device) {
#if COPAINT_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return stats.allocated_bytes[0].peak;  // [0]: StatType::AGGREGATE
  }
#endif
  (void)device;
  return 0;
}

void cuda_reset_peak_memory(const c10::Device& device) {
#if COPAINT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
  (void)device;
}

void cuda_empty_cache() {
#if COPAINT_WITH_CUDA
  if (cuda_device_count() > 0) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

void device_synchronize(const c10::Device& device) {
#if COPAINT_WITH_CUDA
  if (device.is_cuda()) {
    CurrentCudaDevice current(device);
    c10::cuda::device_synchronize();
  }
#endif
  (void)device;
}

std::string cuda_device_name(const c10::Device& device) {
#if COPAINT_WITH_CUDA
  cudaDeviceProp props{};
  if (device.is_cuda() &&
      cudaGetDeviceProperties(&props, device.has_index() ? device.index() : 0) == cudaSuccess) {
    char memory[32];
    std::snprintf(memory, sizeof memory, ", %.1f GiB",
                  static_cast<double>(props.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    return props.name + std::string(memory);
  }
#endif
  (void)device;
  return "";
}

CurrentCudaDevice::CurrentCudaDevice(const c10::Device& device) {
#if COPAINT_WITH_CUDA
  if (device.is_cuda() && device.has_index() && device.index() != c10::cuda::current_device()) {
    previous_ = c10::cuda::current_device();
    c10::cuda::set_device(device.index());
  }
#endif
  (void)device;
}

CurrentCudaDevice::~CurrentCudaDevice() {
#if COPAINT_WITH_CUDA
  if (previous_ >= 0) c10::cuda::set_device(static_cast<c10::DeviceIndex>(previous_));
#endif
}

}  // namespace copaint
