// Gradients through the network for the gradient-based methods (CoPaint, DPS), with the guard
// that keeps a reduced-precision torso (fp16, bf16) from degrading a sample without a trace:
// non-finite losses and gradients are counted per sample, and recomputed with a scaled loss.
#pragma once

#include <ATen/core/Tensor.h>

namespace copaint {

struct EvalCounter;

/// A gradient of sum(loss) with respect to x, and which samples needed the guard.
struct GuardedGrad {
  at::Tensor grad;       ///< like x, float32 (x's dtype); finite wherever `nonfinite` is false
  at::Tensor nonfinite;  ///< bool [B]: loss or gradient non-finite at the first computation
};

/// The gradient of loss.sum() (loss: [B] per sample, or [1] batch-coupled) with respect to x
/// ([B, ...], requires grad), the graph freed afterwards. The sample rows whose loss or gradient
/// is non-finite are counted into `counter.nonfinite_grads` (int64 [B] on x's device, added to,
/// created when undefined) without a host read. With `reduced_precision` (the network's torso in
/// fp16 or bf16) those rows are recomputed, in one blocking read for the decision plus one per
/// retry, with the loss scaled by 2^-8, 2^-16, 2^-24 (the gradient unscaled in float32): an
/// overflow in the half-precision backward is the usual cause, and a scaled loss keeps the same
/// direction in exact arithmetic. Rows still non-finite get a zero gradient (that sample does
/// not move on this step; its count says so). In float32 the gradient is returned as computed.
GuardedGrad guarded_grad(const at::Tensor& loss, const at::Tensor& x, bool reduced_precision,
                         EvalCounter& counter);

}  // namespace copaint
