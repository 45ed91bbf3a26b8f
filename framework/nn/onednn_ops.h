// Convolution and batched matrix product on the CPU through oneDNN whatever the tensor sizes, with
// input gradients computed by oneDNN too. Why: ATen 1.13 sends float convolutions it considers
// small (batch 1 with C*H*W <= 20480, 1x1 kernels), every mm/bmm/einsum, and the gradients of those
// convolutions to the system BLAS; Debian's default libblas is the unoptimised reference BLAS
// (~5 GFLOP/s here, against 40-120 GFLOP/s for oneDNN on the same shapes).
// Also owns FlopCounter, which counts the FLOPs of every call of these functions.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace copaint {

/// Process-wide switch for the functions below (default on). Off, they are exactly the ATen ops
/// they replace, so results are bitwise those of PyTorch on the same machine (the reference's
/// numbers), at the BLAS's speed. Not thread-safe against concurrent calls.
void set_onednn_ops_enabled(bool enabled);
bool onednn_ops_enabled();

/// The input gradient of a frozen convolution needs its weight flipped and transposed; those
/// copies are cached per weight tensor of at least 1 MiB (dropped when the weight is freed, rebuilt
/// when it is changed in place) up to this many bytes in all (default 4 GiB; 0 = no cache).
/// Lowering the limit below the current use empties the cache.
void set_onednn_backward_cache_limit(int64_t bytes);
/// Bytes the cache holds for live weights now.
int64_t onednn_backward_cache_bytes();

/// True when `t` can take the oneDNN path: the switch is on, `t` is a float32 strided CPU tensor,
/// and ATen was built with MKLDNN and the user did not disable it
/// (at::globalContext().setUserEnabledMkldnn(false)).
bool onednn_usable(const at::Tensor& t);

/// at::conv2d(x, w, b, stride, padding) with dilation 1 and one group, equal up to float
/// rounding. Runs through oneDNN (forward and input gradient) when x and w are onednn_usable,
/// stride is 1, and neither w nor b requires grad (frozen weights, the sampling case); anything
/// else (double, fp16, CUDA, training) goes to at::conv2d unchanged. b may be undefined.
at::Tensor onednn_conv2d(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                         int64_t stride, int64_t padding);

/// at::linear(x, w, b) for x [N,in], w [out,in]: a 1x1 onednn_conv2d over [N,in,1,1] when that
/// takes the oneDNN path (frozen w and b), else at::linear.
at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);

/// at::mm(a, b) for a [M,K], b [K,N] -> [M,N], differentiable in both. Through oneDNN (a 1x1
/// convolution with weight a over the "image" b) when both are onednn_usable, else at::mm.
at::Tensor onednn_mm(const at::Tensor& a, const at::Tensor& b);

/// Counts the floating-point operations (2 x multiply-accumulates) of every onednn_conv2d,
/// onednn_linear and onednn_mm call made while at least one FlopCounter is alive, whichever path
/// (oneDNN or ATen, CPU or CUDA) the call takes, from the shapes: conv = output elements x
/// in_channels x k x k x 2, linear = output elements x in_features x 2, mm = M x N x K x 2. Bias
/// additions are not counted. With no counter alive the cost per call is one relaxed atomic load.
///
/// Backward passes run while a counter is alive are counted too: the oneDNN path computes its
/// input gradients by calling these functions again (a conv's input gradient is one conv of the
/// same MACs; each mm operand's gradient is one mm of the same MACs), and on the ATen fallback
/// paths a result that requires grad gets a gradient hook (only when a counter is alive at the
/// forward call) that adds, when the backward reaches the op and a counter is alive then, the
/// forward's FLOPs once for every operand that required grad at the forward (x, w for conv and
/// linear; a, b for mm; biases are not counted).
///
/// The accumulator is process-wide (CUDA backward passes run on autograd's device threads), so a
/// counter also sees calls made by other threads while it lives. Counters nest: each reports what
/// happened since its own construction.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  /// FLOPs counted since this counter was constructed.
  int64_t flops() const;
  /// Counted events since construction: calls of the three functions plus fallback-path
  /// backward hooks that fired.
  int64_t calls() const;

 private:
  int64_t start_flops_;
  int64_t start_calls_;
};

}  // namespace copaint
