// Host-device transfers in one place: the blocking read of device data on the host, uploads of
// host data to the run's device, and read-only tables (schedules, coefficients, timestep maps)
// uploaded once per device. Each deliberate transfer runs inside a named RecordFunction scope, so
// the host-sync test (tests/methods/host_sync_test.cpp) can count them on the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace copaint {

/// RecordFunction scope names of the deliberate transfers.
inline constexpr const char* kToHostScope = "copaint::to_host";
inline constexpr const char* kUploadScope = "copaint::upload";

/// A contiguous CPU copy of `t`: on CUDA a blocking device-to-host transfer (the one kind of
/// host sync the samplers' budget counts), on the CPU the tensor itself (made contiguous).
at::Tensor to_host(const at::Tensor& t);

/// Host data (a CPU tensor) on `device` in `dtype`: on CUDA staged through pinned memory and
/// copied without blocking the host (the caching host allocator keeps the staging buffer until
/// the copy has run); on the CPU a dtype conversion at most.
at::Tensor upload(const at::Tensor& host, const c10::Device& device, at::ScalarType dtype);

/// `values` as a float64 [n] tensor on `device`, uploaded once per (tag, content, device) and
/// reused for the life of the process (a bounded cache: older entries are dropped first). With a
/// `derive` function the table holds derive(values) instead, computed only when not cached; `tag`
/// names the derivation (e.g. "sqrt_recip_alphas_cumprod"). Never write into the result.
at::Tensor device_table(
    const std::vector<double>& values, const c10::Device& device, const std::string& tag = "",
    const std::function<std::vector<double>(const std::vector<double>&)>& derive = nullptr);
/// `values` as an int64 [n] tensor on `device`, cached like the float64 tables.
at::Tensor device_table(const std::vector<int64_t>& values, const c10::Device& device);

}  // namespace copaint
