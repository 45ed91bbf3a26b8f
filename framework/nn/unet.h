// The ADM UNet (guided-diffusion's UNetModel), written functionally over a name->tensor table whose
// names are exactly the original state_dict keys; config presets and config inference.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace copaint {

/// ADM architecture flags, named as guided-diffusion's script flags.
struct UNetConfig {
  int image_size = 256;           ///< training resolution; resolves channel_mult "" and attention
  int in_channels = 3;            ///< image channels (out = in, or 2*in with learn_sigma)
  int num_channels = 128;         ///< base width (model_channels)
  int num_res_blocks = 2;         ///< res blocks per level
  std::string channel_mult = "";  ///< "" = the original's default per image size, else "1,2,2"
  bool learn_sigma = false;       ///< output 2*in channels (eps and the variance interpolation)
  bool class_cond = false;        ///< has label_emb
  int num_classes = 1000;         ///< rows of label_emb when class_cond
  std::string attention_resolutions = "16,8";  ///< feature-map sizes with attention
  int num_heads = 4;                 ///< heads per attention block (when num_head_channels == -1)
  int num_head_channels = -1;        ///< channels per head; overrides num_heads when != -1
  int num_heads_upsample = -1;       ///< heads in the decoder (-1 = num_heads)
  bool use_scale_shift_norm = true;  ///< FiLM conditioning: norm(h) * (1 + scale) + shift
  bool resblock_updown = false;      ///< res blocks do the up/down sampling
  bool use_new_attention_order = false;  ///< QKVAttention (split qkv, then heads) vs legacy
  bool use_fp16 = false;  ///< the original's flag; fp16 runs only after to(cuda, kHalf)
  double dropout = 0.0;   ///< recorded only: forward() is always in eval mode

  /// Canonical "key=value,..." listing every field in declaration order; the list-valued
  /// fields are quoted (channel_mult="1,2,2", attention_resolutions="16,8").
  std::string to_string() const;
  /// out_channels of the network: in_channels, doubled with learn_sigma.
  int out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  /// The level multipliers: parsed channel_mult, or the original's default for image_size.
  /// Throws UsageError for an unparsable string or an image size without a default.
  std::vector<double> resolved_channel_mult() const;
  /// Downsampling rates with attention (image_size / resolution), in the order given.
  std::vector<int> attention_downsample_rates() const;
};

/// The paper's checkpoints: "celebahq256" (RePaint's CelebA-HQ model) and "imagenet256" (OpenAI's
/// class-conditional ImageNet model). Throws UsageError naming the known presets.
UNetConfig unet_preset(const std::string& name);
/// Names accepted by unet_preset.
std::vector<std::string> unet_preset_names();

/// Names and shapes of every tensor, in state_dict order.
using UNetLayout = std::vector<std::pair<std::string, std::vector<int64_t>>>;

class UNet {
 public:
  /// Builds the architecture and allocates parameters on the CPU in float32 with PyTorch's
  /// default init (uniform +-1/sqrt(fan_in) for conv/linear, N(0,1) embedding, GroupNorm 1/0;
  /// the original's zero-initialised output convs are NOT zeroed). Seed with at::manual_seed.
  /// Parameters do not require grad (see requires_grad_).
  explicit UNet(const UNetConfig& config);

  const UNetConfig& config() const { return config_; }
  /// Expected names and shapes in state_dict order.
  UNetLayout parameter_layout() const { return layout(config_); }
  /// The layout of a config without allocating anything (for 500M-parameter checks).
  static UNetLayout layout(const UNetConfig& config);
  int64_t parameter_count() const;
  /// Copies a state_dict in (converting to each parameter's device and dtype). Throws InputError
  /// naming every missing, unexpected and mis-shaped tensor and the config flags most likely wrong.
  void load(const std::vector<std::pair<std::string, at::Tensor>>& state_dict);
  /// x [B,C,H,W]; t [B] timesteps of the ORIGINAL 1000-step process (int64 or float);
  /// y [B] int64 labels (class_cond only) or undefined. Returns [B, out_channels, H, W] in x's
  /// dtype.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y = {}) const;
  /// Moves parameters. kHalf mimics the original's convert_to_fp16: only the conv weights and
  /// biases of input/middle/output blocks become fp16 (GroupNorm, linears, time_embed, label_emb
  /// and out stay float32); the torso then computes in fp16 (CUDA only in LibTorch 1.13).
  /// kBFloat16 does the same in bfloat16 (CPU and CUDA). Any other dtype (kFloat, kDouble)
  /// converts every parameter.
  void to(at::Device device, at::ScalarType dtype = at::kFloat);
  /// The dtype the torso computes in (kFloat unless to() chose kHalf, kBFloat16 or kDouble).
  at::ScalarType torso_dtype() const { return torso_dtype_; }
  /// Channels-last (NHWC) memory layout for the 4-D weights and the activations (forward converts
  /// its input; the output is returned contiguous). Equal results up to rounding; faster where
  /// the convolution kernels prefer NHWC (cuDNN with tensor cores, oneDNN).
  void set_channels_last(bool channels_last);
  bool channels_last() const { return channels_last_; }
  /// Activation checkpointing of every input, middle and output block (framework/
  /// activation_checkpoint.h): a forward with grad to x keeps only the block boundaries, and the
  /// backward recomputes each block once. Memory for compute; only input gradients (parameters
  /// must not require grad). No effect without grad mode.
  void set_checkpointing(bool checkpointing) { checkpointing_ = checkpointing; }
  bool checkpointing() const { return checkpointing_; }
  /// Sets requires_grad on every parameter (false after construction).
  void requires_grad_(bool requires_grad);
  std::vector<at::Tensor> parameters() const;
  /// For training / saving: the live parameter tensors, in state_dict order.
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const { return params_; }
  /// One parameter by state_dict name; throws UsageError if absent.
  const at::Tensor& parameter(const std::string& name) const;
  at::Device device() const;

 private:
  /// One layer of a TimestepEmbedSequential; parameter slots index params_ (-1 = absent).
  struct Layer {
    enum class Kind { kConv, kRes, kAttn, kDown, kUp } kind = Kind::kConv;
    int64_t channels = 0;  ///< input channels
    int64_t out_channels = 0;
    int64_t heads = 1;   ///< attention
    int updown = 0;      ///< res block: -1 down, +1 up
    bool conv = false;   ///< Down/Up: learned conv (else avg-pool / plain nearest)
    int w = -1, b = -1;  ///< conv; attention qkv
    int norm1_w = -1, norm1_b = -1, conv1_w = -1, conv1_b = -1;  ///< res in_layers; attn norm
    int emb_w = -1, emb_b = -1, norm2_w = -1, norm2_b = -1;
    int conv2_w = -1, conv2_b = -1;  ///< res out_layers conv; attention proj_out
    int skip_w = -1, skip_b = -1;
  };
  using Block = std::vector<Layer>;
  struct Builder;

  at::Tensor run_block(const Block& block, at::Tensor h, const at::Tensor& emb) const;
  at::Tensor res_block(const Layer& l, at::Tensor x, const at::Tensor& emb) const;
  at::Tensor attention_block(const Layer& l, const at::Tensor& x) const;
  const at::Tensor& p(int index) const { return params_[static_cast<size_t>(index)].second; }

  UNetConfig config_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::unordered_map<std::string, size_t> index_;
  std::vector<Block> input_blocks_;
  Block middle_block_;
  std::vector<Block> output_blocks_;
  int time_w0_ = -1, time_b0_ = -1, time_w2_ = -1, time_b2_ = -1, label_emb_ = -1;
  int out_norm_w_ = -1, out_norm_b_ = -1, out_conv_w_ = -1, out_conv_b_ = -1;
  std::vector<bool> torso_conv_;  ///< per parameter: a torso conv weight/bias (fp16 in kHalf)
  at::ScalarType torso_dtype_ = at::kFloat;
  bool channels_last_ = false;
  /// The last labels range-checked (held, so that no other tensor can take its place): the
  /// methods pass the same label tensor to every forward, so a CUDA run pays one host sync per
  /// batch for the check, not one per step.
  mutable at::Tensor checked_labels_;
  /// The timestep embedding's frequencies on the device of the last forward (made once).
  mutable at::Tensor freqs_;
  bool checkpointing_ = false;
};

/// Infers the ADM configuration from a state_dict's names and shapes (for `copaint inspect`).
/// Recovered: in_channels, num_channels, channel_mult (always explicit), num_res_blocks,
/// attention_resolutions (as image_size / rate; a resolution with no level of that size
/// cannot appear), learn_sigma (out = 2 * in), class_cond and num_classes, use_scale_shift_norm
/// (emb_layers out = 2 * channels), resblock_updown.
/// NOT determinable from shapes (left at the UNetConfig defaults): num_heads,
/// num_head_channels, num_heads_upsample, use_new_attention_order (qkv shapes do not depend on
/// the head split), dropout, use_fp16.
/// image_size <= 0: inferred from the default channel_mult table (512/256/128/64); throws
/// UsageError when the multipliers match no default. Throws InputError when the tensors do not
/// form an ADM UNet.
UNetConfig infer_unet_config(const std::vector<std::pair<std::string, at::Tensor>>& state_dict,
                             int image_size);

}  // namespace copaint
