// checkpointed(): an autograd node that recomputes its forward during the backward pass.
#include "framework/activation_checkpoint.h"

#include <memory>
#include <utility>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include "framework/error.h"

namespace copaint {
namespace {

using torch::autograd::variable_list;

/// Backward of checkpointed(): recompute fn from the saved input with the graph on, then take the
/// gradient of that recomputation (a reentrant backward, as PyTorch's own checkpointing does).
struct RecomputeBackward : torch::autograd::Node {
  std::function<at::Tensor(const at::Tensor&)> fn;
  at::Tensor input;  ///< detached

  variable_list apply(variable_list&& grads) override {
    if (!input.defined()) {
      throw UsageError("checkpointed: backward ran twice through a freed graph (retain_graph)");
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
    if (y.is_alias_of(input)) y = y.clone();
  }
  if (!torch::autograd::isDifferentiableType(y.scalar_type())) return y;
  auto node = std::shared_ptr<RecomputeBackward>(new RecomputeBackward(),
                                                 torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  node->fn = fn;
  node->input = x.detach();
  torch::autograd::set_history(y, node);
  return y;
}

}  // namespace copaint
