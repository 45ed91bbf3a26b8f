// Analytic UNet FLOP counts: the walk of UNet::Builder (framework/nn/unet.cpp) with feature-map
// sizes.
#include "framework/nn/flops.h"

#include <algorithm>
#include <string>
#include <vector>

#include "framework/core/error.h"

namespace copaint {
namespace {

/// Accumulates the FLOPs of one forward while walking the blocks.
struct Walker {
  const UNetConfig& c;
  double batch;
  UNetFlops f;

  /// k x k conv (stride 1 or the stride-2 downsampling conv) producing a [cout, h, w] map.
  void conv(int64_t cin, int64_t cout, int64_t k, int64_t h, int64_t w) {
    f.conv += 2.0 * batch * static_cast<double>(cout * h * w) * static_cast<double>(cin * k * k);
  }
  void linear(int64_t in, int64_t out) {
    f.linear += 2.0 * batch * static_cast<double>(in) * static_cast<double>(out);
  }
  /// ResBlock from ch to out_ch on an h x w input; updown -1 halves, +1 doubles the map (before
  /// in_layers' conv, as the original's h_upd/x_upd). Updates h, w to the output size.
  void res(int64_t ch, int64_t out_ch, int updown, int64_t& h, int64_t& w) {
    if (updown < 0) {
      h /= 2;
      w /= 2;
    } else if (updown > 0) {
      h *= 2;
      w *= 2;
    }
    conv(ch, out_ch, 3, h, w);  // in_layers.2
    linear(4 * static_cast<int64_t>(c.num_channels), c.use_scale_shift_norm ? 2 * out_ch : out_ch);
    conv(out_ch, out_ch, 3, h, w);                // out_layers.3
    if (out_ch != ch) conv(ch, out_ch, 1, h, w);  // skip_connection
  }
  /// AttentionBlock over an h x w map of ch channels (the heads split ch, not the MACs).
  void attention(int64_t ch, int64_t h, int64_t w) {
    const double t = static_cast<double>(h * w);
    conv(ch, 3 * ch, 1, h, w);                                           // qkv
    f.attention += 2.0 * 2.0 * batch * t * t * static_cast<double>(ch);  // q^T k and weight v
    conv(ch, ch, 1, h, w);                                               // proj_out
  }
  /// Downsample (stride-2 conv, or a res block) / Upsample (nearest + conv, or a res block).
  void resample(int64_t ch, bool up, int64_t& h, int64_t& w) {
    if (c.resblock_updown) return res(ch, ch, up ? 1 : -1, h, w);
    if (up) {
      h *= 2;
      w *= 2;
    } else {
      h /= 2;
      w /= 2;
    }
    conv(ch, ch, 3, h, w);  // on the output map in both cases
  }
};

}  // namespace

UNetFlops unet_forward_flops_breakdown(const UNetConfig& config, int64_t batch, int64_t height,
                                       int64_t width) {
  const auto mult = config.resolved_channel_mult();
  const auto attn_ds = config.attention_downsample_rates();
  const int64_t factor = int64_t{1} << (mult.size() - 1);
  if (batch < 0 || height <= 0 || width <= 0 || height % factor != 0 || width % factor != 0) {
    throw InputError("unet_forward_flops: batch " + std::to_string(batch) + ", " +
                     std::to_string(height) + "x" + std::to_string(width) +
                     ": want batch >= 0 and H, W positive multiples of " + std::to_string(factor) +
                     " (" + std::to_string(mult.size()) + " levels)");
  }
  const auto has_attn = [&](int ds) {
    return std::find(attn_ds.begin(), attn_ds.end(), ds) != attn_ds.end();
  };
  const int64_t mc = config.num_channels;
  const auto channels = [&](double m) { return static_cast<int64_t>(m * static_cast<double>(mc)); };

  Walker wk{config, static_cast<double>(batch), {}};
  wk.linear(mc, 4 * mc);      // time_embed.0
  wk.linear(4 * mc, 4 * mc);  // time_embed.2

  int64_t h = height, w = width;
  int64_t ch = channels(mult[0]);
  const int64_t input_ch = ch;
  wk.conv(config.in_channels, ch, 3, h, w);  // input_blocks.0
  std::vector<int64_t> skip_chans = {ch};
  int ds = 1;
  for (size_t level = 0; level < mult.size(); ++level) {
    for (int r = 0; r < config.num_res_blocks; ++r) {
      wk.res(ch, channels(mult[level]), 0, h, w);
      ch = channels(mult[level]);
      if (has_attn(ds)) wk.attention(ch, h, w);
      skip_chans.push_back(ch);
    }
    if (level + 1 != mult.size()) {
      wk.resample(ch, false, h, w);
      skip_chans.push_back(ch);
      ds *= 2;
    }
  }
  wk.res(ch, ch, 0, h, w);  // middle block
  wk.attention(ch, h, w);
  wk.res(ch, ch, 0, h, w);
  for (size_t level = mult.size(); level-- > 0;) {
    for (int i = 0; i <= config.num_res_blocks; ++i) {
      const int64_t skip = skip_chans.back();
      skip_chans.pop_back();
      wk.res(ch + skip, channels(mult[level]), 0, h, w);
      ch = channels(mult[level]);
      if (has_attn(ds)) wk.attention(ch, h, w);
      if (level != 0 && i == config.num_res_blocks) {
        wk.resample(ch, true, h, w);
        ds /= 2;
      }
    }
  }
  wk.conv(input_ch, config.out_channels(), 3, h, w);  // out.2
  return wk.f;
}

double unet_forward_flops(const UNetConfig& config, int64_t batch, int64_t height, int64_t width) {
  return unet_forward_flops_breakdown(config, batch, height, width).total();
}

double unet_backward_to_input_flops(const UNetConfig& config, int64_t batch, int64_t height,
                                    int64_t width) {
  const UNetFlops f = unet_forward_flops_breakdown(config, batch, height, width);
  return f.conv + 2.0 * f.attention;
}

}  // namespace copaint
