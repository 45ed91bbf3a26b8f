// Test helpers: reading plain-dict torch.save files (fixtures, re-saved LPIPS heads) with
// torch::jit::pickle_load, and locating shared data.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace copaint::testing {

/// Entries of a plain dict of tensors saved by torch.save, in file order.
inline std::vector<std::pair<std::string, at::Tensor>> load_plain_dict(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const c10::IValue v = torch::jit::pickle_load(bytes);
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& kv : v.toGenericDict()) {
    if (kv.value().isTensor()) out.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
  }
  return out;
}

inline at::Tensor get(const std::vector<std::pair<std::string, at::Tensor>>& dict,
                      const std::string& name) {
  for (const auto& [k, v] : dict) {
    if (k == name) return v;
  }
  throw std::runtime_error("fixture has no entry " + name);
}

inline bool exists(const std::string& path) { return std::filesystem::is_regular_file(path); }

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace copaint::testing
