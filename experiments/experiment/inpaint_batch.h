// Running one batch of inpainting problems on a device, shared by `copaint inpaint` and the
// experiment runner: per-sample generators from seeds, the initial noise, labels, timing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "framework/diffusion/model.h"
#include "methods/method.h"

namespace copaint {

/// A batch of B problems (CPU or device tensors; moved to the device by run_inpaint_batch).
struct InpaintBatch {
  at::Tensor images;            ///< [B,C,H,W] in [-1,1]
  at::Tensor masks;             ///< [B or 1,1,H,W], 1 = known
  at::Tensor labels;            ///< [B] int64 class labels, or undefined for unconditional models
  std::vector<uint64_t> seeds;  ///< one generator seed per sample (B of them)
  at::Tensor x_T;               ///< optional [B,C,H,W] initial noise; else see draw_x_T
  /// Without x_T: true draws it here from the seeds' generators (per_sample_randn, as a method
  /// would) so that it can be returned; false leaves it to the method (needed by methods that
  /// draw their own starting points, e.g. resample's particles), and the result's x_T is empty.
  bool draw_x_T = true;
  std::function<void(int64_t, int64_t)> on_step;  ///< the method's step callback (may be empty)
};

/// What a batch produced, on the CPU.
struct InpaintBatchResult {
  at::Tensor samples;  ///< [B,C,H,W] float in [-1,1]
  at::Tensor x_T;      ///< [B,C,H,W] the initial noise given or drawn (undefined otherwise)
  EvalCounter evals;   ///< network evaluations (each over the whole batch)
  double seconds = 0;  ///< wall time of the method's run (the device synchronised at the end)
};

/// Runs `method` on `model` (already on `device`) for the batch. Sample i's randomness comes
/// only from a CPU generator seeded with seeds[i], so it does not depend on the batch.
InpaintBatchResult run_inpaint_batch(Method& method, Denoiser& model, const InpaintBatch& batch,
                                     const c10::Device& device);

/// The seed of sample `index`'s generator in `copaint inpaint`: seed * 1000003 + index (mod 2^64),
/// so sample i is the same whatever --samples and --batch-size are.
uint64_t inpaint_sample_seed(uint64_t seed, int64_t index);

/// Checks a class label against the model: a class-conditional model needs one in
/// [0, num_classes), an unconditional one none (label < 0). Throws UsageError naming `what`.
void check_class_label(const Denoiser& model, int64_t label, const std::string& what);

}  // namespace copaint
