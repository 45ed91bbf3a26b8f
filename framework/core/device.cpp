// Device parsing and CPU thread settings.
#include "framework/core/device.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <thread>

#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/torch_compat.h"

namespace copaint {

bool cuda_available() { return cuda_device_count() > 0; }

c10::Device parse_device(const std::string& spec) {
  if (spec == "auto") return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (spec.size() > 5) {
      const std::string n = spec.substr(5);
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos || n.size() > 4) {
        throw UsageError("bad device '" + spec + "'; valid: auto, cpu, cuda, cuda:N");
      }
      index = std::stoi(n);
    }
    if (!cuda_available()) {
      throw UsageError("device '" + spec +
                       "' requested but LibTorch sees no CUDA GPU; use --device cpu");
    }
    const int count = cuda_device_count();
    if (index >= count) {
      throw UsageError("device '" + spec + "' out of range: " + std::to_string(count) +
                       " GPU(s) visible");
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UsageError("bad device '" + spec + "'; valid: auto, cpu, cuda, cuda:N");
}

void set_num_threads(int threads) {
  if (threads < 0) throw UsageError("thread count must be >= 0, got " + std::to_string(threads));
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  if (cores > 0 && threads > cores) {
    log_warn("--threads " + std::to_string(threads) + " is more than the machine's " +
             std::to_string(cores) + " cores; using " + std::to_string(cores));
    threads = cores;
  }
  if (threads > 0) at::set_num_threads(threads);
}

int num_threads() { return at::get_num_threads(); }

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "tf32") return Precision::kTf32;
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp16") return Precision::kFp16;
  throw UsageError("bad precision '" + name + "'; valid: fp32, tf32, bf16, fp16");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kTf32:
      return "tf32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "fp32";
}

void set_cuda_math(const c10::Device& device, Precision precision, bool cudnn_benchmark) {
  if (!device.is_cuda()) return;
  set_cuda_tf32(precision == Precision::kTf32);
  set_cudnn_benchmark(cudnn_benchmark);
}

DeviceFault device_fault(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return DeviceFault::kOutOfMemory;
  const std::string what = error_first_line(e);
  if (what.find("CUDA out of memory") != std::string::npos ||
      what.find("CUBLAS_STATUS_ALLOC_FAILED") != std::string::npos ||
      what.find("CUDNN_STATUS_ALLOC_FAILED") != std::string::npos) {
    return DeviceFault::kOutOfMemory;
  }
  for (const char* marker : {"CUDA error", "CUDA driver error", "cuDNN error", "CUDNN_STATUS_",
                             "CUBLAS_STATUS_", "CUDA kernel errors", "device-side assert"}) {
    if (what.find(marker) != std::string::npos) return DeviceFault::kCuda;
  }
  return DeviceFault::kNone;
}

std::string error_first_line(const std::exception& e) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string what = c10_error ? c10_error->what_without_backtrace() : e.what();
  return what.substr(0, what.find('\n'));
}

std::string describe_device(const c10::Device& device) {
  if (device.is_cpu()) return "cpu (" + std::to_string(at::get_num_threads()) + " threads)";
  const std::string name = cuda_device_name(device);
  return device.str() + (name.empty() ? "" : " (" + name + ")");
}

}  // namespace copaint
