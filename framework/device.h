// Device selection in one place: `auto|cpu|cuda[:N]` parsing and the CPU thread count.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace copaint {

/// Parses "auto" (CUDA when LibTorch sees a GPU, else CPU), "cpu", "cuda" or "cuda:N".
/// Throws UsageError for anything else, and for a CUDA device that is not available.
c10::Device parse_device(const std::string& spec);

/// Whether LibTorch was built with CUDA and sees at least one GPU.
bool cuda_available();

/// Sets intra-op threads for CPU work; 0 keeps LibTorch's default.
void set_num_threads(int threads);

/// "cpu (2 threads)" or "cuda:0 (NVIDIA H100 ...)" for logs and result rows.
std::string describe_device(const c10::Device& device);

}  // namespace copaint
