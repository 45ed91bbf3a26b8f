// The method interface: an inpainting algorithm run on a Denoiser for a batch of problems.
// A method never loads weights or writes files.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/model.h"

namespace copaint {

/// One batch of inpainting problems. Sample i draws all its randomness from generators[i], so a
/// sample's result does not depend on which other samples share its batch.
struct InpaintInput {
  at::Tensor image;  ///< [B,C,H,W] in [-1,1]; only known pixels are read
  at::Tensor mask;   ///< [B,1,H,W] (or [B,C,H,W]), 1 = known pixel
  at::Tensor y;      ///< [B] int64 class labels, or undefined for unconditional models
  at::Tensor x_T;    ///< optional [B,C,H,W] initial noise; drawn from the generators if undefined
  std::vector<at::Generator> generators;  ///< one per sample (CPU generators)
  /// Replaces the Gaussian noise a method draws for `purpose` (e.g. "undo" for time travel) at
  /// respaced step t; returns a tensor shaped like `like`. Empty = draw from the generators.
  /// Lets tests replay a reference run's noise.
  std::function<at::Tensor(const std::string& purpose, int64_t t, const at::Tensor& like)> noise;
  /// Called after each outer step with (step, total steps); may be empty.
  std::function<void(int64_t, int64_t)> on_step;
};

/// What a method returns for a batch.
struct InpaintOutput {
  at::Tensor sample;   ///< [B,C,H,W] in [-1,1]
  EvalCounter evals;   ///< network evaluations spent on the whole batch
};

class Method {
 public:
  static constexpr const char* kRegistryKind = "method";
  virtual ~Method() = default;
  virtual InpaintOutput run(Denoiser& model, const InpaintInput& input) = 0;
  /// Network forwards one sample is expected to cost (for --dry-run estimates); 0 if unknown.
  virtual int64_t expected_forwards() const { return 0; }
};

/// Registers every built-in method in Registry<Method>::global(). Idempotent.
void register_builtin_methods();

}  // namespace copaint
