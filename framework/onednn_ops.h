// Convolution and batched matrix product on the CPU through oneDNN whatever the tensor sizes, with
// input gradients computed by oneDNN too. Why: ATen 1.13 sends float convolutions it considers
// small (batch 1 with C*H*W <= 20480, 1x1 kernels), every mm/bmm/einsum, and the gradients of those
// convolutions to the system BLAS; Debian's default libblas is the unoptimised reference BLAS
// (~5 GFLOP/s here, against 40-120 GFLOP/s for oneDNN on the same shapes).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace copaint {

/// Process-wide switch for the functions below (default on). Off, they are exactly the ATen ops
/// they replace, so results are bitwise those of PyTorch on the same machine (the reference's
/// numbers), at the BLAS's speed. Not thread-safe against concurrent calls.
void set_onednn_ops_enabled(bool enabled);
bool onednn_ops_enabled();

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

}  // namespace copaint
