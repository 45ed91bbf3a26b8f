// Activation checkpointing: run a differentiable piece of a network without keeping its
// intermediate activations, and recompute them when the backward pass reaches it.
#pragma once

#include <functional>

#include <ATen/core/Tensor.h>

namespace copaint {

/// fn(x), keeping for backward only x (not fn's intermediate tensors); backward recomputes fn(x)
/// with the graph on and back-propagates through it. Trades one extra evaluation of fn per
/// backward for memory: with every UNet block checkpointed, a backward to the input holds the
/// block boundaries only.
///
/// Contract: fn must be deterministic, and gradients flow to x only: tensors fn captures (weights,
/// the timestep embedding) get no gradient through this call, so they must not need one (frozen
/// weights: the sampling case). Without grad mode, or when x does not require grad, this is just
/// fn(x). fn is kept alive by the graph until the backward has run (or the graph is freed). The
/// output is never a view (views are cloned). Changing x in place between the forward and the
/// backward is a UsageError at the backward (as autograd's saved-tensor check), and so is a
/// double backward (create_graph): the recomputed gradient is not connected to x's graph.
at::Tensor checkpointed(const std::function<at::Tensor(const at::Tensor&)>& fn,
                        const at::Tensor& x);

}  // namespace copaint
