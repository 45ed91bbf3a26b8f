// The guarded gradient of the gradient-based methods: counting, loss scaling, zeroing.
#include "methods/gradients.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "framework/core/transfer.h"
#include "framework/diffusion/model.h"

namespace copaint {
namespace {

constexpr int kRescales = 3;  ///< loss scales 2^-8, 2^-16, 2^-24

/// bool [B]: rows of g ([B, ...]) with a non-finite entry, or whose loss entry is non-finite
/// (loss [B], or [1] for the whole batch).
at::Tensor nonfinite_rows(const at::Tensor& g, const at::Tensor& loss) {
  const int64_t batch = g.size(0);
  const at::Tensor rows = at::logical_not(at::isfinite(g).reshape({batch, -1}).all(1));
  const at::Tensor bad_loss = at::logical_not(at::isfinite(loss.detach().reshape({-1})));
  return rows | bad_loss.expand({batch});
}

/// rows [B] shaped to broadcast over x.
at::Tensor per_row(const at::Tensor& rows, const at::Tensor& x) {
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  return rows.reshape(shape);
}

at::Tensor gradient(const at::Tensor& loss, const at::Tensor& x, bool retain) {
  return torch::autograd::grad({loss.sum()}, {x}, /*grad_outputs=*/{}, retain)[0].detach();
}

}  // namespace

GuardedGrad guarded_grad(const at::Tensor& loss, const at::Tensor& x, bool reduced_precision,
                         EvalCounter& counter) {
  GuardedGrad out;
  out.grad = gradient(loss, x, /*retain=*/reduced_precision);
  ++counter.backwards;
  out.nonfinite = nonfinite_rows(out.grad, loss);
  const at::Tensor count = out.nonfinite.to(at::kLong);
  counter.nonfinite_grads =
      counter.nonfinite_grads.defined() ? counter.nonfinite_grads + count : count;
  if (!reduced_precision) return out;

  at::Tensor bad = out.nonfinite;
  for (int k = 1; k <= kRescales; ++k) {
    if (!to_host(bad.any()).data_ptr<bool>()[0]) return out;
    const double scale = std::ldexp(1.0, -8 * k);
    const at::Tensor g = gradient(loss * scale, x, /*retain=*/k < kRescales) / scale;
    ++counter.backwards;
    const at::Tensor fixed = bad & at::logical_not(nonfinite_rows(g, loss));
    out.grad = at::where(per_row(fixed, x), g, out.grad);
    bad = bad & at::logical_not(fixed);
  }
  out.grad = out.grad.masked_fill(per_row(bad, x), 0.0);
  return out;
}

}  // namespace copaint
