// checkpointed(): an autograd node that recomputes its forward during the backward pass.
#include "framework/nn/activation_checkpoint.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include "framework/core/error.h"

namespace copaint {
namespace {

using torch::autograd::variable_list;

/// Backward of checkpointed(): recompute fn from the saved input with the graph on, then take the
/// gradient of that recomputation (a reentrant backward, as PyTorch's own checkpointing does).
struct RecomputeBackward : torch::autograd::Node {
  std::function<at::Tensor(const at::Tensor&)> fn;
  at::Tensor input;      ///< detached
  uint32_t version = 0;  ///< input's version at the forward

  variable_list apply(variable_list&& grads) override {
    if (!input.defined()) {
      throw UsageError("checkpointed: backward ran twice through a freed graph (retain_graph)");
    }
    if (input._version() != version) {
      throw UsageError("checkpointed: the input was modified in place after the forward (version " +
                       std::to_string(version) + " -> " + std::to_string(input._version()) +
                       "), so the recomputation would differ");
    }
    // The engine runs this with grad mode = create_graph of the outer backward. The gradient
    // computed here hangs off a fresh leaf, not off the original input, so a graph of it would
    // give wrong higher derivatives: refused.
    if (at::GradMode::is_enabled()) {
      throw UsageError(
          "checkpointed: double backward (create_graph) is not supported; turn "
          "activation checkpointing off for higher derivatives");
    }
    at::Tensor out_grad = grads.at(0);
    if (!out_grad.defined()) return {at::Tensor()};
    const at::Tensor x = input.detach().requires_grad_(true);
    at::Tensor y;
    {
      at::AutoGradMode grad(true);
      y = fn(x);
    }
    if (!y.requires_grad()) return {at::zeros_like(input)};
    return {torch::autograd::grad({y}, {x}, {out_grad}, /*retain_graph=*/false,
                                  /*create_graph=*/false, /*allow_unused=*/true)[0]};
  }

  std::string name() const override { return "copaint::RecomputeBackward"; }
  void release_variables() override {
    input.reset();
    fn = nullptr;
  }
};

}  // namespace

at::Tensor checkpointed(const std::function<at::Tensor(const at::Tensor&)>& fn,
                        const at::Tensor& x) {
  if (!at::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    const at::Tensor input = x.detach();
    y = fn(input);
    // A fresh, non-view output: history is attached to it, and a view made under no-grad could
    // not be modified in place later.
    if (y.is_alias_of(input) || y.is_view()) y = y.clone();
  }
  if (!torch::autograd::isDifferentiableType(y.scalar_type())) return y;
  auto node =
      std::shared_ptr<RecomputeBackward>(new RecomputeBackward(), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  node->fn = fn;
  node->input = x.detach();
  node->version = x._version();
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace copaint
