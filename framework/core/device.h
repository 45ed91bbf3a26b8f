// Device selection in one place: `auto|cpu|cuda[:N]` parsing, the CPU thread count, and the
// numeric precision a network runs in (with the process-wide CUDA math switches it implies), and
// what a device failure is (DeviceError, device_fault).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

#include <c10/core/Device.h>

namespace copaint {

/// Parses "auto" (CUDA when LibTorch sees a GPU, else CPU), "cpu", "cuda" or "cuda:N".
/// Throws UsageError for anything else, and for a CUDA device that is not available.
c10::Device parse_device(const std::string& spec);

/// Whether LibTorch was built with CUDA and sees at least one GPU.
bool cuda_available();

/// Sets intra-op threads for CPU work; 0 keeps LibTorch's default; more than the machine's
/// cores is capped to them with a warning.
void set_num_threads(int threads);
/// The intra-op threads CPU work uses now.
int num_threads();

/// The arithmetic a network's forward (and backward) runs in. Inputs and outputs stay float32.
///  - kFp32: float32 everywhere; on CUDA TF32 is switched OFF for cuBLAS and cuDNN (PyTorch
///    enables it for cuDNN convolutions by default), so results match the CPU up to rounding.
///  - kTf32: float32 tensors, TF32 tensor-core matmuls and convolutions on CUDA (Ampere and
///    later; 10-bit mantissa products, float32 accumulation). Same as kFp32 on the CPU.
///  - kBf16: the UNet torso (its convolutions, attention and skip connections) in bfloat16;
///    GroupNorm, softmax, the timestep embedding and the output layer stay float32 (the
///    original's use_fp16 recipe with bfloat16). CPU and CUDA.
///  - kFp16: the same torso in float16 (guided-diffusion's use_fp16). CUDA only.
enum class Precision { kFp32, kTf32, kBf16, kFp16 };

/// Parses fp32 | tf32 | bf16 | fp16; throws UsageError naming the valid values otherwise.
Precision parse_precision(const std::string& name);
/// The name parse_precision accepts.
const char* precision_name(Precision precision);

/// The process-wide CUDA math switches for a device: TF32 in cuBLAS and cuDNN on exactly for
/// kTf32, and cuDNN's autotuner (benchmark mode: fastest algorithm per shape, may change the
/// rounding between runs) on when `cudnn_benchmark`. No effect on a CPU device.
void set_cuda_math(const c10::Device& device, Precision precision, bool cudnn_benchmark);

/// A device failure that ends a run instead of becoming a result row: out of memory at batch size
/// 1, or a CUDA error (which may leave the context unusable). The message says what to change;
/// the command exits 1.
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What a failure on a device is: out of memory (c10::OutOfMemoryError or its text), another
/// CUDA error (CUDA/cuDNN/cuBLAS status, device-side assert: the context may be unusable), or
/// neither (an ordinary failure of the sample).
enum class DeviceFault { kNone, kOutOfMemory, kCuda };
DeviceFault device_fault(const std::exception& e);
/// The first line of an exception's message (a c10::Error without its backtrace).
std::string error_first_line(const std::exception& e);

/// "cpu (2 threads)" or "cuda:0 (NVIDIA H100 ...)" for logs and result rows.
std::string describe_device(const c10::Device& device);

}  // namespace copaint
