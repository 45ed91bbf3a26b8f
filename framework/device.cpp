// Device parsing and CPU thread settings.
#include "framework/device.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "framework/error.h"

namespace copaint {

bool cuda_available() { return at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0; }

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
      throw UsageError("device '" + spec + "' requested but LibTorch sees no CUDA GPU; use --device cpu");
    }
    const int count = at::detail::getCUDAHooks().getNumGPUs();
    if (index >= count) {
      throw UsageError("device '" + spec + "' out of range: " + std::to_string(count) + " GPU(s) visible");
    }
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw UsageError("bad device '" + spec + "'; valid: auto, cpu, cuda, cuda:N");
}

void set_num_threads(int threads) {
  if (threads < 0) throw UsageError("thread count must be >= 0, got " + std::to_string(threads));
  if (threads > 0) at::set_num_threads(threads);
}

std::string describe_device(const c10::Device& device) {
  if (device.is_cpu()) return "cpu (" + std::to_string(at::get_num_threads()) + " threads)";
  return device.str();
}

}  // namespace copaint
