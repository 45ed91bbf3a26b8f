// Analytic floating-point operation counts of one ADM UNet forward pass and of its backward pass
// to the input, walked over the architecture exactly as framework/nn/unet.cpp builds it.
#pragma once

#include <cstdint>

#include "framework/nn/unet.h"

namespace copaint {

/// FLOPs (2 x multiply-accumulates) of one UNet::forward, split by operation kind.
///
/// Counted: every convolution (3x3 convs of the input layer, res blocks, resampling convs
/// including the stride-2 downsampling ones, the output conv; 1x1 skip convs), every linear (the
/// two time-embedding layers, each res block's emb_layers), the attention blocks' qkv and
/// proj_out (1x1 convs over the flattened map, under `conv`) and the two attention matmuls
/// (q^T k and the weighted sum of v: each batch x T x T x channels MACs, T = H x W of the map;
/// the head split does not change them). A conv costs output elements x in_channels x k x k MACs.
/// NOT counted: bias additions, GroupNorm, SiLU, softmax, scaling, up/down-sampling by pooling or
/// nearest neighbour, concatenations, the sinusoidal embedding and the label embedding lookup
/// (elementwise or gathers: a few percent of the time at most, and no matmul unit work).
struct UNetFlops {
  double conv = 0;       ///< all convolutions, attention qkv/proj_out included
  double linear = 0;     ///< time_embed and emb_layers
  double attention = 0;  ///< the two attention matmuls
  double total() const { return conv + linear + attention; }
};

/// The breakdown of one forward of a network with `config` on x [batch, in_channels, height,
/// width]. Throws InputError when height/width are not positive multiples of 2^(levels-1) (as
/// UNet::forward) or batch < 0, UsageError for an invalid channel_mult/attention_resolutions.
UNetFlops unet_forward_flops_breakdown(const UNetConfig& config, int64_t batch, int64_t height,
                                       int64_t width);

/// unet_forward_flops_breakdown(...).total().
double unet_forward_flops(const UNetConfig& config, int64_t batch, int64_t height, int64_t width);

/// FLOPs of the backward pass of one forward to its input x with frozen weights (what a
/// gradient-guided sampler's torch::autograd::grad(loss, x) costs after the forward):
///  - every convolution's input gradient: the same MACs as its forward (the transposed conv);
///    the first conv's too, since the gradient is wanted at x;
///  - each attention matmul needs the gradients of both its operands (q and k; the attention
///    weights and v), each the same MACs as the forward product: twice its forward;
///  - the linears get no gradient: they act on the timestep (and label) embedding, which does not
///    depend on x, so autograd never reaches them;
///  - weight gradients are not computed (frozen weights); elementwise backward work is ignored
///    as in the forward count.
/// I.e. breakdown.conv + 2 x breakdown.attention. Activation checkpointing would add one more
/// forward of the recomputed blocks; this count assumes none.
double unet_backward_to_input_flops(const UNetConfig& config, int64_t batch, int64_t height,
                                    int64_t width);

}  // namespace copaint
