// Everything that differs between the LibTorch releases we build against (Debian's 1.13.1, CPU;
// PyPI's 2.x, CUDA) and every call into CUDA-only LibTorch API, behind plain functions. No other
// file tests TORCH_VERSION_* or COPAINT_WITH_CUDA.
#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/Storage.h>
#include <torch/version.h>

#define COPAINT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace copaint {

/// A storage's bytes for writing (LibTorch 2.x made Storage::data() const).
inline void* mutable_storage_data(const c10::Storage& storage) {
#if COPAINT_TORCH_AT_LEAST(2, 1)
  return storage.mutable_data();
#else
  return storage.data();
#endif
}

/// Whether this binary was compiled against a CUDA LibTorch (COPAINT_WITH_CUDA, set by CMake).
bool cuda_built();
/// The CUDA version LibTorch was built with ("13.0"), or "" for a CPU LibTorch.
std::string cuda_build_version();
/// GPUs LibTorch sees now (0 without a driver or without CUDA support).
int cuda_device_count();

/// TF32 tensor-core arithmetic for float32 matmuls (cuBLAS) and convolutions (cuDNN), on or off.
/// LibTorch >= 2.9 spells this setFloat32Precision (the allowTF32 setters are deprecated there).
void set_cuda_tf32(bool enabled);
/// Whether TF32 is on for float32 matmuls and convolutions (reads what set_cuda_tf32 set; mixing
/// the legacy and the new API is an error in LibTorch >= 2.9).
bool cuda_tf32_enabled();
/// cuDNN's autotuner (benchmark mode).
void set_cudnn_benchmark(bool enabled);

/// Peak bytes the CUDA caching allocator handed out on `device` since the last reset; 0 for a
/// CPU device or a CPU build.
int64_t cuda_peak_memory_bytes(const c10::Device& device);
void cuda_reset_peak_memory(const c10::Device& device);
/// Hands the CUDA caching allocator's unused blocks back (after an out-of-memory); no-op on the
/// CPU or a CPU build.
void cuda_empty_cache();
/// Waits for the work queued on `device` (a no-op on the CPU), for timing: that device's, not
/// the current one's.
void device_synchronize(const c10::Device& device);

/// "NVIDIA H100 80GB HBM3, 79.1 GiB" for a CUDA device; "" for the CPU or a CPU build.
std::string cuda_device_name(const c10::Device& device);

/// Makes a CUDA `device` the current one for the object's lifetime (kernels launched without an
/// explicit device, cuBLAS handles, the caching allocator's default all follow it), restoring the
/// previous one after; nothing for the CPU.
class CurrentCudaDevice {
 public:
  explicit CurrentCudaDevice(const c10::Device& device);
  ~CurrentCudaDevice();
  CurrentCudaDevice(const CurrentCudaDevice&) = delete;
  CurrentCudaDevice& operator=(const CurrentCudaDevice&) = delete;

 private:
  int previous_ = -1;  ///< the device to restore; -1 = none changed
};

}  // namespace copaint
