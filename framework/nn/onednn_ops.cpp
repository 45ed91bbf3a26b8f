// oneDNN convolution and batched matmul with their own autograd nodes (see onednn_ops.h for why),
// and the FLOP counter over those calls.
#include "framework/nn/onednn_ops.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace copaint {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::atomic<bool> g_enabled{true};

// FlopCounter state: live counters, and monotonic totals that only grow while one is alive.
std::atomic<int> g_counters{0};
std::atomic<int64_t> g_flops{0};
std::atomic<int64_t> g_calls{0};

inline bool counting() { return g_counters.load(std::memory_order_relaxed) != 0; }

void add_flops(int64_t flops) {
  g_flops.fetch_add(flops, std::memory_order_relaxed);
  g_calls.fetch_add(1, std::memory_order_relaxed);
}

/// Counts a call whose result is `out` and whose FLOPs are `flops`. On the ATen fallback paths
/// (`hook`), a result that requires grad also gets a hook adding `flops` once per operand that
/// requires grad (`grad_operands`), when the backward reaches it with a counter alive.
void count(const at::Tensor& out, int64_t flops, bool hook, int grad_operands) {
  add_flops(flops);
  if (hook && grad_operands > 0 && out.requires_grad()) {
    const int64_t backward_flops = flops * grad_operands;
    out.register_hook([backward_flops](const at::Tensor&) {
      if (counting()) add_flops(backward_flops);
    });
  }
}

int requiring_grad(const at::Tensor& a, const at::Tensor& b) {
  return (a.requires_grad() ? 1 : 0) + (b.requires_grad() ? 1 : 0);
}

int64_t conv_flops(const at::Tensor& out, const at::Tensor& w) {
  return 2 * out.numel() * w.size(1) * w.size(2) * w.size(3);
}

/// The oneDNN convolution itself: stride 1, dilation 1, one group.
at::Tensor dnnl_conv(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                     int64_t padding) {
  return at::mkldnn_convolution(x.contiguous(), w.contiguous(), b, {padding, padding}, {1, 1},
                                {1, 1}, 1);
}

/// The weights the input gradient of a stride-1 convolution needs (w flipped spatially, in/out
/// channels swapped, contiguous), kept per frozen weight tensor: building them is a full copy of
/// the weights on every backward (1.5 s for the 447M conv parameters of the paper's UNet on one
/// core, ~40% of a backward at 64x64). Only weights of at least 1 MiB are kept. An entry is keyed
/// by the weight's TensorImpl, holds a weak reference to it (a freed weight's entry is dropped, and
/// its address cannot be reused while the reference lives) and its version counter (an in-place
/// change recomputes).
class BackwardWeightCache {
 public:
  static constexpr int64_t kMinBytes = int64_t{1} << 20;  ///< weights below 1 MiB are not cached

  at::Tensor get(const at::Tensor& w) {
    const auto build = [&] { return w.flip({2, 3}).transpose(0, 1).contiguous(); };
    const int64_t bytes = w.numel() * static_cast<int64_t>(w.element_size());
    // Small weights are cheaper to flip than to keep (the tiny UNet's 8 MB of copies ran 5% slower
    // than rebuilding them); inference tensors have no version counter to check against; a view
    // (e.g. the unsqueezed weight of a 1-d convolution) is a new tensor on every call, so its
    // entry would never be hit again.
    if (bytes < kMinBytes || w.is_inference() || w.is_view()) return build();
    const uint32_t version = w._version();
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(w.unsafeGetTensorImpl());
    if (it != entries_.end()) {
      if (!it->second.source.expired() && it->second.version == version) return it->second.flipped;
      bytes_ -= it->second.bytes;
      entries_.erase(it);
    }
    drop_expired();  // a miss: entries of freed weights (a model moved or destroyed) go now
    if (bytes_ + bytes > limit_) return build();
    Entry e{c10::weak_intrusive_ptr<c10::TensorImpl>(w.getIntrusivePtr()), version, build(), bytes};
    at::Tensor flipped = e.flipped;
    entries_.emplace(w.unsafeGetTensorImpl(), std::move(e));
    bytes_ += bytes;
    return flipped;
  }

  void set_limit(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    if (bytes_ > limit_) {
      entries_.clear();
      bytes_ = 0;
    }
  }

  int64_t bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    drop_expired();
    return bytes_;
  }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::TensorImpl> source;
    uint32_t version;
    at::Tensor flipped;
    int64_t bytes;
  };

  void drop_expired() {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.source.expired()) {
        bytes_ -= it->second.bytes;
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::mutex mutex_;
  std::unordered_map<const c10::TensorImpl*, Entry> entries_;
  int64_t bytes_ = 0;
  int64_t limit_ = int64_t{4} << 30;
};

BackwardWeightCache& backward_weights() {
  static BackwardWeightCache cache;
  return cache;
}

/// y = conv(x, w, b) with frozen w and b: the autograd node returns the gradient to x only.
/// (at::mkldnn_convolution has its own derivative, but it goes through at::convolution_backward,
/// whose backend choice sends small problems back to the BLAS.)
struct FrozenConv : torch::autograd::Function<FrozenConv> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const c10::optional<at::Tensor>& b, int64_t padding) {
    ctx->save_for_backward({w});
    ctx->saved_data["padding"] = padding;
    return dnnl_conv(x, w, b, padding);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor w = ctx->get_saved_variables()[0];
    const int64_t padding = ctx->saved_data["padding"].toInt();
    // For stride 1, d conv(x, w, p) / dx applied to g is conv(g, w', k - 1 - p) with w' the kernel
    // flipped spatially and with in/out channels swapped. Through onednn_conv2d again, so a
    // double backward stays possible.
    const at::Tensor w_t = backward_weights().get(w);
    const at::Tensor gx = onednn_conv2d(grads[0], w_t, at::Tensor(), 1, w.size(2) - 1 - padding);
    return {gx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

/// w [O,K] @ x [K,P] as a 1x1 convolution with weight w over x seen as a [1,K,P,1] image: planar
/// (NCHW) when x is row-major, channels-last (NHWC, no copy) when x is column-major, e.g. a
/// transposed view. The result is [O,P] in the image's layout (row- or column-major).
at::Tensor conv_mm(const at::Tensor& w, const at::Tensor& x) {
  const int64_t o = w.size(0), k = w.size(1), p = x.size(1);
  const at::Tensor image = x.t().is_contiguous()
                               ? x.t().unsqueeze(0).unsqueeze(2).permute({0, 3, 1, 2})
                               : x.contiguous().view({1, k, p, 1});
  return at::mkldnn_convolution(image, w.contiguous().view({o, k, 1, 1}), c10::nullopt, {0, 0},
                                {1, 1}, {1, 1}, 1)
      .squeeze(3)
      .squeeze(0);
}

/// a [M,K] @ b [K,N]. oneDNN reorders the convolution weight into its blocked layout on every
/// call, so the smaller operand is made the weight: a (a @ b) or b^T (the transposed product
/// b^T a^T, transposed back), and the big one is read in place as the image.
at::Tensor dnnl_mm(const at::Tensor& a, const at::Tensor& b) {
  if (b.numel() >= a.numel()) return conv_mm(a, b);
  return conv_mm(b.t(), a.t()).t();
}

struct Mm : torch::autograd::Function<Mm> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& b) {
    ctx->save_for_backward({a, b});
    return dnnl_mm(a, b);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &a = saved[0], &b = saved[1], &g = grads[0];
    at::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = onednn_mm(g, b.t());  // dL/da = g b^T
    if (ctx->needs_input_grad(1)) gb = onednn_mm(a.t(), g);  // dL/db = a^T g
    return {ga, gb};
  }
};

}  // namespace

void set_onednn_ops_enabled(bool enabled) { g_enabled = enabled; }
void set_onednn_backward_cache_limit(int64_t bytes) { backward_weights().set_limit(bytes); }
int64_t onednn_backward_cache_bytes() { return backward_weights().bytes(); }
bool onednn_ops_enabled() { return g_enabled; }

bool onednn_usable(const at::Tensor& t) {
  return g_enabled && t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat &&
         t.layout() == at::kStrided && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
}

namespace {

/// onednn_conv2d without counting. `fallback` is set when it went to at::conv2d.
at::Tensor conv2d_uncounted(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            int64_t stride, int64_t padding, bool& fallback) {
  const bool frozen = !w.requires_grad() && !(b.defined() && b.requires_grad());
  const bool fits = x.dim() == 4 && w.dim() == 4 && w.size(2) == w.size(3) && padding >= 0 &&
                    padding < w.size(2) && (!b.defined() || onednn_usable(b));
  fallback = stride != 1 || !frozen || !fits || !onednn_usable(x) || !onednn_usable(w);
  if (fallback) return at::conv2d(x, w, b, {stride, stride}, {padding, padding});
  const c10::optional<at::Tensor> bias = b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt;
  return FrozenConv::apply(x, w, bias, padding);
}

}  // namespace

FlopCounter::FlopCounter() {
  // Start values first: calls made before the increment are not ours.
  start_flops_ = g_flops.load();
  start_calls_ = g_calls.load();
  g_counters.fetch_add(1);
}

FlopCounter::~FlopCounter() { g_counters.fetch_sub(1); }

int64_t FlopCounter::flops() const { return g_flops.load() - start_flops_; }
int64_t FlopCounter::calls() const { return g_calls.load() - start_calls_; }

at::Tensor onednn_conv2d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                         int64_t stride, int64_t padding) {
  bool fallback = false;
  at::Tensor out = conv2d_uncounted(x, w, b, stride, padding, fallback);
  if (counting()) count(out, conv_flops(out, w), fallback, requiring_grad(x, w));
  return out;
}

at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const bool frozen = !w.requires_grad() && !(b.defined() && b.requires_grad());
  at::Tensor out;
  bool fallback = x.dim() != 2 || w.dim() != 2 || !frozen || !onednn_usable(x) ||
                  !onednn_usable(w) || (b.defined() && !onednn_usable(b));
  if (fallback) {
    out = at::linear(x, w, b);
  } else {
    out = conv2d_uncounted(x.reshape({x.size(0), x.size(1), 1, 1}),
                           w.reshape({w.size(0), w.size(1), 1, 1}), b, 1, 0, fallback)
              .view({x.size(0), w.size(0)});
  }
  if (counting()) count(out, 2 * out.numel() * w.size(-1), fallback, requiring_grad(x, w));
  return out;
}

at::Tensor onednn_mm(const at::Tensor& a, const at::Tensor& b) {
  const bool fits = a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0);
  const bool fallback = !fits || !onednn_usable(a) || !onednn_usable(b);
  at::Tensor out = fallback ? at::mm(a, b) : Mm::apply(a, b);  // at::mm: shape errors
  if (counting()) count(out, 2 * out.numel() * a.size(1), fallback, requiring_grad(a, b));
  return out;
}

}  // namespace copaint
