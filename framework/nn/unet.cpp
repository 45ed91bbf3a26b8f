// The ADM UNet: architecture builder (names/shapes in state_dict order), functional forward with
// ATen ops, state_dict loading with config diagnostics, fp16 conversion and config inference.
#include "framework/nn/unet.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "framework/core/error.h"
#include "framework/nn/activation_checkpoint.h"
#include "framework/nn/onednn_ops.h"

namespace copaint {
namespace {

constexpr int64_t kGroups = 32;  // GroupNorm32 in the original: 32 groups everywhere

std::string shape_str(at::IntArrayRef shape) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
  s << ']';
  return s.str();
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

std::string format_number(double v) {
  std::ostringstream s;
  if (v == std::floor(v) && std::abs(v) < 1e9) {
    s << static_cast<int64_t>(v);
  } else {
    s << v;
  }
  return s.str();
}

std::string join_mult(const std::vector<double>& mult) {
  std::string out;
  for (size_t i = 0; i < mult.size(); ++i) out += (i ? "," : "") + format_number(mult[i]);
  return out;
}

/// The original's default channel_mult per image size (create_model).
std::vector<double> default_mult(int image_size) {
  switch (image_size) {
    case 512:
      return {0.5, 1, 1, 2, 2, 4, 4};
    case 256:
      return {1, 1, 2, 2, 4, 4};
    case 128:
      return {1, 1, 2, 3, 4};
    case 64:
      return {1, 2, 3, 4};
    default:
      return {};
  }
}

/// GroupNorm32: normalise in float32, cast back to the input's dtype.
at::Tensor group_norm32(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const auto dtype = x.scalar_type();
  // float32 unless the whole model runs in double (gradient checks).
  const auto compute = dtype == at::kDouble ? at::kDouble : at::kFloat;
  if (dtype == compute && w.scalar_type() == compute && b.scalar_type() == compute) {
    return at::group_norm(x, kGroups, w, b, 1e-5);  // nothing to convert (the usual case)
  }
  return at::group_norm(x.to(compute), kGroups, w.to(compute), b.to(compute), 1e-5).to(dtype);
}

// Convolutions go through onednn_conv2d: the same as at::conv2d up to rounding, but float32 CPU
// convolutions ATen deems small (most of a 32x32 model at batch 1) run in oneDNN instead of the
// system BLAS, 10-25x faster with Debian's reference BLAS (see onednn_ops.h).
at::Tensor conv3x3(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                   int64_t stride = 1) {
  return onednn_conv2d(x, w, b, stride, 1);
}

at::Tensor conv1x1(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return onednn_conv2d(x, w, b, 1, 0);
}

/// conv1d with a kernel of 1 ([B,C,T] by [O,C,1]): a 1x1 conv over [B,C,T,1] on the oneDNN path,
/// else the original's conv1d.
at::Tensor conv1d_k1(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (!onednn_usable(x)) return at::conv1d(x, w, b);
  return conv1x1(x.unsqueeze(-1), w.unsqueeze(-1), b).squeeze(-1);
}

at::Tensor upsample2x(const at::Tensor& x) {
  return at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
}

at::Tensor downsample_pool(const at::Tensor& x) { return at::avg_pool2d(x, {2, 2}, {2, 2}); }

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// UNetConfig

std::string UNetConfig::to_string() const {
  std::ostringstream s;
  s << "image_size=" << image_size << ",in_channels=" << in_channels
    << ",num_channels=" << num_channels << ",num_res_blocks=" << num_res_blocks
    << ",channel_mult=\"" << channel_mult << "\",learn_sigma=" << (learn_sigma ? "true" : "false")
    << ",class_cond=" << (class_cond ? "true" : "false") << ",num_classes=" << num_classes
    << ",attention_resolutions=\"" << attention_resolutions << "\",num_heads=" << num_heads
    << ",num_head_channels=" << num_head_channels << ",num_heads_upsample=" << num_heads_upsample
    << ",use_scale_shift_norm=" << (use_scale_shift_norm ? "true" : "false")
    << ",resblock_updown=" << (resblock_updown ? "true" : "false")
    << ",use_new_attention_order=" << (use_new_attention_order ? "true" : "false")
    << ",use_fp16=" << (use_fp16 ? "true" : "false") << ",dropout=" << dropout;
  return s.str();
}

std::vector<double> UNetConfig::resolved_channel_mult() const {
  if (channel_mult.empty()) {
    auto mult = default_mult(image_size);
    if (mult.empty()) {
      throw UsageError(
          "UNet: no default channel_mult for image_size=" + std::to_string(image_size) +
          " (defaults exist for 64, 128, 256, 512); "
          "set channel_mult, e.g. \"1,2,2\"");
    }
    return mult;
  }
  std::vector<double> mult;
  for (const auto& item : split_commas(channel_mult)) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || !(v > 0)) {
      throw UsageError("UNet: bad channel_mult \"" + channel_mult +
                       "\" (want positive numbers "
                       "separated by commas, e.g. \"1,2,2\")");
    }
    mult.push_back(v);
  }
  if (mult.empty()) throw UsageError("UNet: empty channel_mult \"" + channel_mult + "\"");
  return mult;
}

std::vector<int> UNetConfig::attention_downsample_rates() const {
  std::vector<int> ds;
  for (const auto& item : split_commas(attention_resolutions)) {
    int res = 0;
    try {
      size_t used = 0;
      res = std::stoi(item, &used);
      if (used != item.size()) res = 0;
    } catch (const std::exception&) {
      res = 0;
    }
    if (res <= 0) {
      throw UsageError("UNet: bad attention_resolutions \"" + attention_resolutions +
                       "\" (want feature-map sizes separated by commas, e.g. \"16,8\")");
    }
    ds.push_back(image_size / res);  // integer division, as create_model does
  }
  return ds;
}

std::vector<std::string> unet_preset_names() { return {"celebahq256", "imagenet256"}; }

UNetConfig unet_preset(const std::string& name) {
  // Both checkpoints share the architecture flags of configs/{celebahq,imagenet}.yaml.
  UNetConfig c;
  c.image_size = 256;
  c.num_channels = 256;
  c.num_res_blocks = 2;
  c.channel_mult = "";
  c.attention_resolutions = "32,16,8";
  c.num_heads = 4;
  c.num_head_channels = 64;
  c.num_heads_upsample = -1;
  c.learn_sigma = true;
  c.use_scale_shift_norm = true;
  c.resblock_updown = true;
  c.dropout = 0.0;
  if (name == "celebahq256") {
    c.class_cond = false;
    c.use_fp16 = false;
    return c;
  }
  if (name == "imagenet256") {
    c.class_cond = true;
    c.num_classes = 1000;
    c.use_fp16 = true;
    return c;
  }
  std::string names;
  for (const auto& n : unet_preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw UsageError("unknown UNet preset '" + name + "'; valid: " + names);
}

// ------------------------------------------------------------------------------------------------
// Architecture builder: walks UNetModel.__init__ and records every parameter in registration order.

struct UNet::Builder {
  enum class Init { kFanIn, kOnes, kZeros, kNormal };
  struct Param {
    std::string name;
    std::vector<int64_t> shape;
    Init init;
    int64_t fan_in;
    bool torso_conv;
  };

  const UNetConfig& c;
  std::vector<Param> params;
  std::vector<Block> input_blocks;
  Block middle_block;
  std::vector<Block> output_blocks;
  int time_w0 = -1, time_b0 = -1, time_w2 = -1, time_b2 = -1, label_emb = -1;
  int out_norm_w = -1, out_norm_b = -1, out_conv_w = -1, out_conv_b = -1;

  explicit Builder(const UNetConfig& config) : c(config) { build(); }

  int add(const std::string& name, std::vector<int64_t> shape, Init init, int64_t fan_in = 0,
          bool torso_conv = false) {
    params.push_back({name, std::move(shape), init, fan_in, torso_conv});
    return static_cast<int>(params.size() - 1);
  }
  static bool in_torso(const std::string& prefix) {
    return starts_with(prefix, "input_blocks.") || starts_with(prefix, "middle_block.") ||
           starts_with(prefix, "output_blocks.");
  }
  /// kernel 3 -> Conv2d 3x3, kernel 1 -> Conv2d 1x1, kernel 0 -> Conv1d with kernel 1.
  void conv(const std::string& prefix, int64_t cin, int64_t cout, int kernel, int& w, int& b) {
    std::vector<int64_t> shape = {cout, cin};
    if (kernel == 0) {
      shape.push_back(1);
    } else {
      shape.push_back(kernel);
      shape.push_back(kernel);
    }
    const int64_t fan = cin * (kernel == 0 ? 1 : kernel * kernel);
    const bool torso = in_torso(prefix);
    w = add(prefix + ".weight", shape, Init::kFanIn, fan, torso);
    b = add(prefix + ".bias", {cout}, Init::kFanIn, fan, torso);
  }
  void linear(const std::string& prefix, int64_t in, int64_t out, int& w, int& b) {
    w = add(prefix + ".weight", {out, in}, Init::kFanIn, in);
    b = add(prefix + ".bias", {out}, Init::kFanIn, in);
  }
  void norm(const std::string& prefix, int64_t ch, int& w, int& b) {
    if (ch % kGroups != 0) {
      throw UsageError("UNet: " + prefix + " has " + std::to_string(ch) +
                       " channels, not divisible by the 32 GroupNorm groups (check num_channels "
                       "and channel_mult)");
    }
    w = add(prefix + ".weight", {ch}, Init::kOnes);
    b = add(prefix + ".bias", {ch}, Init::kZeros);
  }

  Layer res(const std::string& prefix, int64_t ch, int64_t out_ch, int updown) {
    Layer l;
    l.kind = Layer::Kind::kRes;
    l.channels = ch;
    l.out_channels = out_ch;
    l.updown = updown;
    norm(prefix + ".in_layers.0", ch, l.norm1_w, l.norm1_b);
    conv(prefix + ".in_layers.2", ch, out_ch, 3, l.conv1_w, l.conv1_b);
    const int64_t emb_dim = 4 * static_cast<int64_t>(c.num_channels);
    linear(prefix + ".emb_layers.1", emb_dim, c.use_scale_shift_norm ? 2 * out_ch : out_ch, l.emb_w,
           l.emb_b);
    norm(prefix + ".out_layers.0", out_ch, l.norm2_w, l.norm2_b);
    conv(prefix + ".out_layers.3", out_ch, out_ch, 3, l.conv2_w, l.conv2_b);
    if (out_ch != ch) conv(prefix + ".skip_connection", ch, out_ch, 1, l.skip_w, l.skip_b);
    return l;
  }

  Layer attention(const std::string& prefix, int64_t ch, int num_heads) {
    Layer l;
    l.kind = Layer::Kind::kAttn;
    l.channels = l.out_channels = ch;
    if (c.num_head_channels == -1) {
      l.heads = num_heads;
    } else {
      if (c.num_head_channels <= 0 || ch % c.num_head_channels != 0) {
        throw UsageError(
            "UNet: attention at " + prefix + " has " + std::to_string(ch) +
            " channels, not divisible by num_head_channels=" + std::to_string(c.num_head_channels));
      }
      l.heads = ch / c.num_head_channels;
    }
    if (l.heads <= 0 || ch % l.heads != 0) {
      throw UsageError("UNet: attention at " + prefix + " has " + std::to_string(ch) +
                       " channels, not divisible into " + std::to_string(l.heads) + " heads");
    }
    norm(prefix + ".norm", ch, l.norm1_w, l.norm1_b);
    conv(prefix + ".qkv", ch, 3 * ch, 0, l.w, l.b);
    conv(prefix + ".proj_out", ch, ch, 0, l.conv2_w, l.conv2_b);
    return l;
  }

  Layer resample(const std::string& prefix, int64_t ch, bool up) {
    if (c.resblock_updown) return res(prefix, ch, ch, up ? 1 : -1);
    Layer l;
    l.kind = up ? Layer::Kind::kUp : Layer::Kind::kDown;
    l.channels = l.out_channels = ch;
    l.conv = true;  // create_model always uses conv_resample=True
    conv(prefix + (up ? ".conv" : ".op"), ch, ch, 3, l.w, l.b);
    return l;
  }

  void build() {
    if (c.in_channels <= 0) throw UsageError("UNet: in_channels must be positive");
    if (c.num_channels <= 0) throw UsageError("UNet: num_channels must be positive");
    if (c.num_res_blocks < 0) throw UsageError("UNet: num_res_blocks must be >= 0");
    if (c.class_cond && c.num_classes <= 0) throw UsageError("UNet: num_classes must be positive");
    const auto mult = c.resolved_channel_mult();
    const auto attn_ds = c.attention_downsample_rates();
    const auto has_attn = [&](int ds) {
      return std::find(attn_ds.begin(), attn_ds.end(), ds) != attn_ds.end();
    };
    const int64_t mc = c.num_channels;
    const int heads_up = c.num_heads_upsample == -1 ? c.num_heads : c.num_heads_upsample;
    const auto width = [&](double m) { return static_cast<int64_t>(m * static_cast<double>(mc)); };

    linear("time_embed.0", mc, 4 * mc, time_w0, time_b0);
    linear("time_embed.2", 4 * mc, 4 * mc, time_w2, time_b2);
    if (c.class_cond) label_emb = add("label_emb.weight", {c.num_classes, 4 * mc}, Init::kNormal);

    int64_t ch = width(mult[0]);
    const int64_t input_ch = ch;
    {
      Layer l;
      l.kind = Layer::Kind::kConv;
      l.channels = c.in_channels;
      l.out_channels = ch;
      conv("input_blocks.0.0", c.in_channels, ch, 3, l.w, l.b);
      input_blocks.push_back({l});
    }
    std::vector<int64_t> skip_chans = {ch};
    int ds = 1;
    for (size_t level = 0; level < mult.size(); ++level) {
      for (int r = 0; r < c.num_res_blocks; ++r) {
        const std::string prefix = "input_blocks." + std::to_string(input_blocks.size());
        Block block = {res(prefix + ".0", ch, width(mult[level]), 0)};
        ch = width(mult[level]);
        if (has_attn(ds)) block.push_back(attention(prefix + ".1", ch, c.num_heads));
        input_blocks.push_back(block);
        skip_chans.push_back(ch);
      }
      if (level + 1 != mult.size()) {
        const std::string prefix = "input_blocks." + std::to_string(input_blocks.size());
        input_blocks.push_back({resample(prefix + ".0", ch, false)});
        skip_chans.push_back(ch);
        ds *= 2;
      }
    }
    middle_block.push_back(res("middle_block.0", ch, ch, 0));
    middle_block.push_back(attention("middle_block.1", ch, c.num_heads));
    middle_block.push_back(res("middle_block.2", ch, ch, 0));

    for (size_t level = mult.size(); level-- > 0;) {
      for (int i = 0; i <= c.num_res_blocks; ++i) {
        const int64_t skip = skip_chans.back();
        skip_chans.pop_back();
        const std::string prefix = "output_blocks." + std::to_string(output_blocks.size());
        Block block = {res(prefix + ".0", ch + skip, width(mult[level]), 0)};
        ch = width(mult[level]);
        if (has_attn(ds)) block.push_back(attention(prefix + ".1", ch, heads_up));
        if (level != 0 && i == c.num_res_blocks) {
          block.push_back(resample(prefix + "." + std::to_string(block.size()), ch, true));
          ds /= 2;
        }
        output_blocks.push_back(block);
      }
    }
    norm("out.0", ch, out_norm_w, out_norm_b);
    conv("out.2", input_ch, c.out_channels(), 3, out_conv_w, out_conv_b);
  }
};

// ------------------------------------------------------------------------------------------------
// UNet

UNetLayout UNet::layout(const UNetConfig& config) {
  Builder b(config);
  UNetLayout out;
  out.reserve(b.params.size());
  for (auto& p : b.params) out.emplace_back(p.name, p.shape);
  return out;
}

UNet::UNet(const UNetConfig& config) : config_(config) {
  Builder b(config_);
  input_blocks_ = std::move(b.input_blocks);
  middle_block_ = std::move(b.middle_block);
  output_blocks_ = std::move(b.output_blocks);
  time_w0_ = b.time_w0;
  time_b0_ = b.time_b0;
  time_w2_ = b.time_w2;
  time_b2_ = b.time_b2;
  label_emb_ = b.label_emb;
  out_norm_w_ = b.out_norm_w;
  out_norm_b_ = b.out_norm_b;
  out_conv_w_ = b.out_conv_w;
  out_conv_b_ = b.out_conv_b;

  at::NoGradGuard no_grad;
  params_.reserve(b.params.size());
  torso_conv_.reserve(b.params.size());
  for (const auto& p : b.params) {
    at::Tensor t = at::empty(p.shape, at::TensorOptions().dtype(at::kFloat));
    switch (p.init) {
      case Builder::Init::kFanIn: {
        const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(p.fan_in, 1)));
        t.uniform_(-bound, bound);
        break;
      }
      case Builder::Init::kOnes:
        t.fill_(1.0);
        break;
      case Builder::Init::kZeros:
        t.zero_();
        break;
      case Builder::Init::kNormal:
        t.normal_(0.0, 1.0);
        break;
    }
    index_.emplace(p.name, params_.size());
    params_.emplace_back(p.name, t);
    torso_conv_.push_back(p.torso_conv);
  }
}

int64_t UNet::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.second.numel();
  return n;
}

const at::Tensor& UNet::parameter(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw UsageError("UNet has no parameter '" + name + "'");
  return params_[it->second].second;
}

std::vector<at::Tensor> UNet::parameters() const {
  std::vector<at::Tensor> out;
  out.reserve(params_.size());
  for (const auto& p : params_) out.push_back(p.second);
  return out;
}

at::Device UNet::device() const { return params_.front().second.device(); }

void UNet::requires_grad_(bool requires_grad) {
  for (auto& p : params_) p.second.requires_grad_(requires_grad);
}

void UNet::to(at::Device device, at::ScalarType dtype) {
  if (!at::isFloatingType(dtype)) {
    throw UsageError(std::string("UNet::to: unsupported dtype ") + c10::toString(dtype));
  }
  const bool torso_only = dtype == at::kHalf || dtype == at::kBFloat16;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& t = params_[i].second;
    const auto target = torso_only ? (torso_conv_[i] ? dtype : at::kFloat) : dtype;
    if (t.device() == device && t.scalar_type() == target) continue;
    const bool rg = t.requires_grad();
    t = t.detach().to(device, target);
    if (rg) t.requires_grad_(true);
  }
  torso_dtype_ = dtype;
}

void UNet::set_channels_last(bool channels_last) {
  at::NoGradGuard no_grad;
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  for (auto& [name, t] : params_) {
    if (t.dim() != 4) continue;
    const bool rg = t.requires_grad();
    t = t.detach().contiguous(format);
    if (rg) t.requires_grad_(true);
  }
  channels_last_ = channels_last;
}

namespace {

/// What is wrong with a state_dict against a UNet's parameters, name by name.
struct StateDictMismatch {
  std::vector<std::string> missing, unexpected, misshaped, duplicated, bad_dtype;

  /// Whether nothing is wrong.
  bool empty() const {
    return missing.empty() && unexpected.empty() && misshaped.empty() && duplicated.empty() &&
           bad_dtype.empty();
  }
};

/// Compares `state_dict` (indexed into `given` by name, the first of a repeated name) with the
/// parameters `params` (names in `index`).
StateDictMismatch compare_state_dict(
    const std::vector<std::pair<std::string, at::Tensor>>& state_dict,
    const std::vector<std::pair<std::string, at::Tensor>>& params,
    const std::unordered_map<std::string, size_t>& index,
    std::map<std::string, const at::Tensor*>& given) {
  StateDictMismatch m;
  for (const auto& [name, t] : state_dict) {
    if (!given.emplace(name, &t).second) m.duplicated.push_back(name);
    if (!t.defined() || !at::isFloatingType(t.scalar_type())) m.bad_dtype.push_back(name);
  }
  for (const auto& [name, t] : params) {
    auto it = given.find(name);
    if (it == given.end()) {
      m.missing.push_back(name);
    } else if (it->second->defined() && it->second->sizes() != t.sizes()) {
      m.misshaped.push_back(name + " (file " + shape_str(it->second->sizes()) + ", config " +
                            shape_str(t.sizes()) + ")");
    }
  }
  for (const auto& [name, t] : given) {
    if (!index.count(name)) m.unexpected.push_back(name);
  }
  return m;
}

/// Whether the attention levels of `file` and `mine` differ (rates of `mine` beyond the file's
/// levels change nothing; an unreadable attention_resolutions in `mine` counts as none).
bool attention_differs(const UNetConfig& file, const UNetConfig& mine) {
  auto ds_file = file.attention_downsample_rates();
  std::vector<int> ds_mine;
  try {
    ds_mine = mine.attention_downsample_rates();
  } catch (const UsageError&) {
  }
  std::set<int> a(ds_file.begin(), ds_file.end());
  std::set<int> m;
  const int levels = static_cast<int>(file.resolved_channel_mult().size());
  for (int ds : ds_mine) {
    if (ds >= 1 && ds < (1 << levels)) m.insert(ds);  // rates with no level change nothing
  }
  return a != m;
}

/// Appends to `fixes` the settings in which `mine` differs from `f`, the config the file itself
/// shows, as "set key=value (why)" hints.
void add_config_differences(const UNetConfig& f, const UNetConfig& mine,
                            std::vector<std::string>& fixes) {
  const auto hint = [&](bool differs, const std::string& text) {
    if (differs) fixes.push_back(text);
  };
  const auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  hint(f.class_cond != mine.class_cond,
       "set class_cond=" + b(f.class_cond) +
           (f.class_cond ? " (label_emb.weight is in the file)"
                         : " (label_emb.weight is not in the file)"));
  hint(f.class_cond && mine.class_cond && f.num_classes != mine.num_classes,
       "set num_classes=" + std::to_string(f.num_classes) + " (label_emb.weight rows)");
  hint(f.learn_sigma != mine.learn_sigma,
       "set learn_sigma=" + b(f.learn_sigma) + " (out.2.weight has " +
           std::to_string(f.out_channels()) + " output channels)");
  hint(f.in_channels != mine.in_channels,
       "set in_channels=" + std::to_string(f.in_channels) + " (input_blocks.0.0.weight)");
  hint(f.num_channels != mine.num_channels,
       "set num_channels=" + std::to_string(f.num_channels) + " (time_embed.0.weight)");
  std::vector<double> mine_mult;
  try {
    mine_mult = mine.resolved_channel_mult();
  } catch (const UsageError&) {
  }
  hint(f.resolved_channel_mult() != mine_mult, "set channel_mult=" + f.channel_mult);
  hint(f.num_res_blocks != mine.num_res_blocks,
       "set num_res_blocks=" + std::to_string(f.num_res_blocks));
  hint(attention_differs(f, mine), "set attention_resolutions=" + f.attention_resolutions);
  hint(f.use_scale_shift_norm != mine.use_scale_shift_norm,
       "set use_scale_shift_norm=" + b(f.use_scale_shift_norm) + " (emb_layers width)");
  hint(f.resblock_updown != mine.resblock_updown, "set resblock_updown=" + b(f.resblock_updown));
}

/// Hints from what the file itself says about the architecture: the settings of `config` to
/// change, or that the file is no ADM UNet at all.
std::vector<std::string> config_fixes(
    const std::vector<std::pair<std::string, at::Tensor>>& state_dict, const UNetConfig& config) {
  std::vector<std::string> fixes;
  try {
    const UNetConfig f = infer_unet_config(state_dict, config.image_size);
    add_config_differences(f, config, fixes);
  } catch (const std::exception& e) {
    fixes.push_back(std::string("the file does not look like an ADM UNet (") + e.what() + ")");
  }
  return fixes;
}

/// load's error message: every mismatch, then the likely config fixes.
std::string mismatch_message(const UNetConfig& config, const StateDictMismatch& m,
                             const std::vector<std::string>& fixes) {
  std::ostringstream msg;
  msg << "UNet state_dict does not match the configuration (" << config.to_string() << ")";
  const auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    msg << "; " << names.size() << ' ' << what << ": ";
    for (size_t i = 0; i < names.size(); ++i) msg << (i ? ", " : "") << names[i];
  };
  list("missing", m.missing);
  list("unexpected", m.unexpected);
  list("mis-shaped", m.misshaped);
  list("duplicated", m.duplicated);
  list("not floating point", m.bad_dtype);
  if (!fixes.empty()) {
    msg << "; likely config fixes: ";
    for (size_t i = 0; i < fixes.size(); ++i) msg << (i ? "; " : "") << fixes[i];
  }
  return msg.str();
}

}  // namespace

void UNet::load(const std::vector<std::pair<std::string, at::Tensor>>& state_dict) {
  std::map<std::string, const at::Tensor*> given;
  const StateDictMismatch mismatch = compare_state_dict(state_dict, params_, index_, given);
  if (!mismatch.empty()) {
    throw InputError(mismatch_message(config_, mismatch, config_fixes(state_dict, config_)));
  }
  at::NoGradGuard no_grad;
  for (auto& [name, t] : params_) t.detach().copy_(*given.at(name));
}

// ------------------------------------------------------------------------------------------------
// Forward

at::Tensor UNet::res_block(const Layer& l, at::Tensor x, const at::Tensor& emb) const {
  at::Tensor h = at::silu(group_norm32(x, p(l.norm1_w), p(l.norm1_b)));
  if (l.updown != 0) {
    h = l.updown > 0 ? upsample2x(h) : downsample_pool(h);
    x = l.updown > 0 ? upsample2x(x) : downsample_pool(x);
  }
  h = conv3x3(h, p(l.conv1_w), p(l.conv1_b));
  at::Tensor emb_out = onednn_linear(at::silu(emb), p(l.emb_w), p(l.emb_b)).to(h.scalar_type());
  emb_out = emb_out.unsqueeze(-1).unsqueeze(-1);
  if (config_.use_scale_shift_norm) {
    auto ss = emb_out.chunk(2, 1);
    h = group_norm32(h, p(l.norm2_w), p(l.norm2_b)) * (1 + ss[0]) + ss[1];
  } else {
    h = group_norm32(h + emb_out, p(l.norm2_w), p(l.norm2_b));
  }
  // out_layers: SiLU, Dropout (eval: identity), conv.
  h = conv3x3(at::silu(h), p(l.conv2_w), p(l.conv2_b));
  const at::Tensor skip = l.skip_w >= 0 ? conv1x1(x, p(l.skip_w), p(l.skip_b)) : x;
  return skip + h;
}

at::Tensor UNet::attention_block(const Layer& l, const at::Tensor& x) const {
  const int64_t batch = x.size(0), ch = x.size(1);
  const at::Tensor flat = x.reshape({batch, ch, -1});
  const int64_t length = flat.size(2);
  const at::Tensor qkv = conv1d_k1(group_norm32(flat, p(l.norm1_w), p(l.norm1_b)), p(l.w), p(l.b));
  const int64_t heads = l.heads, head_ch = ch / heads;
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(head_ch)));
  at::Tensor q, k, v;
  if (config_.use_new_attention_order) {
    // QKVAttention: split q, k, v first, then heads.
    auto parts = qkv.chunk(3, 1);
    q = (parts[0] * scale).view({batch * heads, head_ch, length});
    k = (parts[1] * scale).view({batch * heads, head_ch, length});
    v = parts[2].reshape({batch * heads, head_ch, length});
  } else {
    // QKVAttentionLegacy: heads first, each head holding its own [q; k; v] rows.
    auto parts = qkv.reshape({batch * heads, 3 * head_ch, length}).split(head_ch, 1);
    q = parts[0] * scale;
    k = parts[1] * scale;
    v = parts[2];
  }
  // Softmax in float32 (double only when the whole model runs in double), cast back.
  const auto softmax = [](const at::Tensor& w) {
    const auto dtype = w.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    return at::softmax(w.to(dtype), -1).to(w.scalar_type());
  };
  // weight[t,s] = softmax_s(sum_c q[c,t] k[c,s]) (the original's einsum "bct,bcs->bts");
  // a[c,t] = sum_s weight[t,s] v[c,s] ("bts,bcs->bct").
  at::Tensor a;
  if (onednn_usable(qkv)) {
    // float32 CPU: one head at a time through oneDNN (einsum/bmm would use the slow system BLAS,
    // see onednn_ops.h). a is computed transposed, as weight v^T, so the big [T,S] matrix is used
    // as stored, and per head so that it is never copied into a stacked batch.
    const auto qs = q.unbind(0), ks = k.unbind(0), vs = v.unbind(0);
    std::vector<at::Tensor> a_t(qs.size());
    for (size_t i = 0; i < qs.size(); ++i) {
      const at::Tensor weight = softmax(onednn_mm(qs[i].t(), ks[i]));
      a_t[i] = onednn_mm(weight, vs[i].t());  // [T, head_ch]
    }
    a = at::stack(a_t).transpose(1, 2).reshape({batch, -1, length});
  } else {
    const at::Tensor weight = softmax(at::einsum("bct,bcs->bts", {q, k}));
    a = at::einsum("bts,bcs->bct", {weight, v}).reshape({batch, -1, length});
  }
  const at::Tensor h = conv1d_k1(a, p(l.conv2_w), p(l.conv2_b));
  return (flat + h).reshape(x.sizes());
}

at::Tensor UNet::run_block(const Block& block, at::Tensor h, const at::Tensor& emb) const {
  for (const Layer& l : block) {
    switch (l.kind) {
      case Layer::Kind::kConv:
        h = conv3x3(h, p(l.w), p(l.b));
        break;
      case Layer::Kind::kRes:
        h = res_block(l, h, emb);
        break;
      case Layer::Kind::kAttn:
        h = attention_block(l, h);
        break;
      case Layer::Kind::kDown:
        h = l.conv ? conv3x3(h, p(l.w), p(l.b), 2) : downsample_pool(h);
        break;
      case Layer::Kind::kUp:
        h = upsample2x(h);
        if (l.conv) h = conv3x3(h, p(l.w), p(l.b));
        break;
    }
  }
  return h;
}

namespace {

/// Throws InputError unless x is [B, in_channels, H, W] floating point with H and W multiples of
/// the total downsampling, t holds B timesteps and y suits the model's class conditioning.
void check_forward_inputs(const UNetConfig& config, const at::Tensor& x, const at::Tensor& t,
                          const at::Tensor& y) {
  if (!x.defined() || x.dim() != 4 || x.size(1) != config.in_channels) {
    throw InputError("UNet::forward: x must be [B," + std::to_string(config.in_channels) +
                     ",H,W], got " + (x.defined() ? shape_str(x.sizes()) : "undefined"));
  }
  const int64_t batch = x.size(0);
  const int64_t levels = static_cast<int64_t>(config.resolved_channel_mult().size());
  const int64_t factor = int64_t{1} << (levels - 1);
  if (x.size(2) % factor != 0 || x.size(3) % factor != 0) {
    throw InputError("UNet::forward: H and W must be multiples of " + std::to_string(factor) +
                     " (" + std::to_string(levels) + " levels), got " + shape_str(x.sizes()));
  }
  if (!at::isFloatingType(x.scalar_type())) {
    throw InputError("UNet::forward: x must be floating point");
  }
  if (!t.defined() || t.numel() != batch || t.dim() > 1) {
    throw InputError("UNet::forward: t must be [B=" + std::to_string(batch) + "], got " +
                     (t.defined() ? shape_str(t.sizes()) : "undefined"));
  }
  if (config.class_cond) {
    if (!y.defined() || y.dim() != 1 || y.size(0) != batch ||
        (y.scalar_type() != at::kLong && y.scalar_type() != at::kInt)) {
      throw InputError("UNet::forward: class-conditional model needs y [B=" +
                       std::to_string(batch) + "] integer labels");
    }
  } else if (y.defined()) {
    throw InputError("UNet::forward: y given to a model without class_cond");
  }
}

/// The timestep embedding's frequencies exp(-log(10000) * i / half), i < dim / 2 (float32, built
/// on the CPU like the original).
at::Tensor embedding_freqs(int64_t dim) {
  const int64_t half = dim / 2;
  return at::exp(at::arange(0, half, at::TensorOptions().dtype(at::kFloat)) * (-std::log(10000.0)) /
                 half);
}

/// Sinusoidal timestep embedding [B, dim] on the device of `freqs` (embedding_freqs(dim) there):
/// args t * freqs, [cos, sin], zero-padded to an odd width.
at::Tensor timestep_embedding(const at::Tensor& steps, int64_t dim, const at::Tensor& freqs) {
  // Samplers keep t on the run's device: a move here would be a copy per forward.
  const at::Tensor on_device = steps.device() == freqs.device() ? steps : steps.to(freqs.device());
  const at::Tensor args = on_device.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);
  at::Tensor temb = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2) temb = at::cat({temb, at::zeros_like(temb.narrow(1, 0, 1))}, -1);
  return temb;
}

/// Throws InputError when labels y (on any device) fall outside [0, num_classes).
void check_labels(const at::Tensor& y, int64_t num_classes) {
  if (y.numel() > 0 && (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= num_classes)) {
    throw InputError("UNet::forward: labels y must be in [0, " + std::to_string(num_classes) + ")");
  }
}

/// Throws UsageError when activation checkpointing would have to give parameters gradients.
void check_recompute_allowed(const std::vector<std::pair<std::string, at::Tensor>>& params) {
  if (std::any_of(params.begin(), params.end(),
                  [](const auto& p) { return p.second.requires_grad(); })) {
    throw UsageError(
        "UNet: activation checkpointing gives gradients to the input only; turn it "
        "off (grad_checkpoint=false) when the parameters require grad (training)");
  }
}

}  // namespace

at::Tensor UNet::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const {
  check_forward_inputs(config_, x, t, y);
  const at::Tensor steps = t.reshape({x.size(0)});
  const at::Device device = x.device();
  if (!freqs_.defined() || freqs_.device() != device)
    freqs_ = embedding_freqs(config_.num_channels).to(device);  // once per device, not per step
  const at::Tensor temb = timestep_embedding(steps, config_.num_channels, freqs_);
  const at::Tensor& w0 = p(time_w0_);
  at::Tensor emb = onednn_linear(temb.to(w0.scalar_type()), w0, p(time_b0_));
  emb = onednn_linear(at::silu(emb), p(time_w2_), p(time_b2_));
  if (config_.class_cond) {
    if (!checked_labels_.defined() || !checked_labels_.is_same(y)) {
      check_labels(y, config_.num_classes);
      checked_labels_ = y;
    }
    const at::Tensor labels = y.device() == device ? y : y.to(device);
    emb = emb + at::embedding(p(label_emb_), labels.to(at::kLong));
  }

  std::vector<at::Tensor> skips;
  skips.reserve(input_blocks_.size());
  at::Tensor h = x.to(torso_dtype_);
  if (channels_last_) h = h.contiguous(at::MemoryFormat::ChannelsLast);
  // With checkpointing, each block is recomputed in the backward pass instead of keeping its
  // activations (only when a graph is being recorded).
  const bool recompute = checkpointing_ && at::GradMode::is_enabled() && x.requires_grad();
  if (recompute) check_recompute_allowed(params_);
  const auto block = [&](const Block& b, const at::Tensor& in) {
    if (!recompute) return run_block(b, in, emb);
    return checkpointed([this, &b, emb](const at::Tensor& v) { return run_block(b, v, emb); }, in);
  };
  for (const Block& b : input_blocks_) {
    h = block(b, h);
    skips.push_back(h);
  }
  h = block(middle_block_, h);
  for (const Block& b : output_blocks_) {
    h = at::cat({h, skips.back()}, 1);
    skips.pop_back();
    h = block(b, h);
  }
  const at::Tensor& ow = p(out_conv_w_);
  h = h.to(ow.scalar_type());
  h = conv3x3(at::silu(group_norm32(h, p(out_norm_w_), p(out_norm_b_))), ow, p(out_conv_b_));
  return h.to(x.scalar_type()).contiguous();
}

// ------------------------------------------------------------------------------------------------
// Config inference

namespace {

/// The shapes of a state_dict's defined tensors by name, and the questions config inference asks
/// of them.
class ShapeIndex {
 public:
  /// Indexes the defined tensors of `state_dict` (a repeated name keeps its last shape).
  explicit ShapeIndex(const std::vector<std::pair<std::string, at::Tensor>>& state_dict) {
    for (const auto& [name, t] : state_dict) {
      if (t.defined()) shapes_[name] = t.sizes().vec();
    }
  }

  /// Whether the file holds a tensor of that name.
  bool has(const std::string& name) const { return shapes_.count(name) > 0; }

  /// The shape of `name`; throws InputError unless it exists with `dims` dimensions.
  const std::vector<int64_t>& shape(const std::string& name, size_t dims) const {
    auto it = shapes_.find(name);
    if (it == shapes_.end()) throw InputError("no tensor '" + name + "'");
    if (it->second.size() != dims) {
      throw InputError("'" + name + "' has shape " + shape_str(it->second) + ", expected " +
                       std::to_string(dims) + " dims");
    }
    return it->second;
  }

  /// Highest index N of "<prefix>.N." + 1.
  int count_blocks(const std::string& prefix) const {
    int n = 0;
    for (const auto& [name, s] : shapes_) {
      if (!starts_with(name, prefix + ".")) continue;
      const auto rest = name.substr(prefix.size() + 1);
      const auto dot = rest.find('.');
      try {
        n = std::max(n, std::stoi(rest.substr(0, dot)) + 1);
      } catch (const std::exception&) {
      }
    }
    return n;
  }

  /// Sub-layer indices present in one block.
  std::set<int> sub_layers(const std::string& block) const {
    std::set<int> subs;
    for (const auto& [name, s] : shapes_) {
      if (!starts_with(name, block + ".")) continue;
      const auto rest = name.substr(block.size() + 1);
      try {
        subs.insert(std::stoi(rest.substr(0, rest.find('.'))));
      } catch (const std::exception&) {
      }
    }
    return subs;
  }

  /// Every name with its shape.
  const std::map<std::string, std::vector<int64_t>>& all() const { return shapes_; }

 private:
  std::map<std::string, std::vector<int64_t>> shapes_;
};

/// A config with the widths and the conditioning the file shows: num_channels (time_embed),
/// in_channels (the first conv), learn_sigma (out has 1x or 2x the input channels), class_cond
/// and num_classes (label_emb).
UNetConfig infer_widths(const ShapeIndex& shapes) {
  UNetConfig c;
  const auto& te = shapes.shape("time_embed.0.weight", 2);
  c.num_channels = static_cast<int>(te[1]);
  if (te[0] != 4 * te[1]) {
    throw InputError("time_embed.0.weight " + shape_str(te) + " is not [4*C, C]");
  }
  const auto& first = shapes.shape("input_blocks.0.0.weight", 4);
  c.in_channels = static_cast<int>(first[1]);
  const int64_t out_ch = shapes.shape("out.2.weight", 4)[0];
  if (out_ch == 2 * c.in_channels) {
    c.learn_sigma = true;
  } else if (out_ch == c.in_channels) {
    c.learn_sigma = false;
  } else {
    throw InputError("out.2.weight has " + std::to_string(out_ch) + " output channels for " +
                     std::to_string(c.in_channels) + " input channels (expected 1x or 2x)");
  }
  c.class_cond = shapes.has("label_emb.weight");
  if (c.class_cond) c.num_classes = static_cast<int>(shapes.shape("label_emb.weight", 2)[0]);
  return c;
}

/// The first output block with a non-attention layer after its res block (the first that
/// upsamples; -1 if none), and in `updown` whether that layer is a res block rather than a conv.
int find_upsampling_block(const ShapeIndex& shapes, int n_out, bool& updown) {
  for (int k = 0; k < n_out; ++k) {
    const std::string block = "output_blocks." + std::to_string(k);
    for (int sub : shapes.sub_layers(block)) {
      if (sub == 0) continue;
      const std::string layer = block + "." + std::to_string(sub);
      if (shapes.has(layer + ".qkv.weight")) continue;
      updown = shapes.has(layer + ".in_layers.0.weight");
      if (!updown && !shapes.has(layer + ".conv.weight")) {
        throw InputError("cannot tell what " + layer +
                         " is (neither an upsampling conv nor a "
                         "res block)");
      }
      return k;
    }
  }
  return -1;
}

/// num_res_blocks and resblock_updown from the block counts; returns the number of levels.
int infer_levels(const ShapeIndex& shapes, UNetConfig& c) {
  const int n_in = shapes.count_blocks("input_blocks"),
            n_out = shapes.count_blocks("output_blocks");
  if (n_out == 0) throw InputError("no output_blocks tensors");
  // The first output block that upsamples has index num_res_blocks.
  bool updown = false;
  int n = find_upsampling_block(shapes, n_out, updown);
  if (n < 0) n = n_out - 1;  // one level: no upsampling anywhere
  const int levels = n_out / (n + 1);
  if (levels * (n + 1) != n_out || n_in != levels * (n + 1)) {
    throw InputError("block counts (" + std::to_string(n_in) + " input, " + std::to_string(n_out) +
                     " output) fit no channel_mult/num_res_blocks");
  }
  c.num_res_blocks = n;
  c.resblock_updown = updown;
  return levels;
}

/// channel_mult (set in `c` and returned) from the first res block of each level's output blocks,
/// checked against the width of the first conv.
std::vector<double> infer_channel_mult(const ShapeIndex& shapes, UNetConfig& c, int levels) {
  const int n = c.num_res_blocks;
  std::vector<double> mult(static_cast<size_t>(levels));
  for (int l = 0; l < levels; ++l) {
    const std::string name =
        "output_blocks." + std::to_string((levels - 1 - l) * (n + 1)) + ".0.out_layers.3.weight";
    mult[static_cast<size_t>(l)] =
        static_cast<double>(shapes.shape(name, 4)[0]) / static_cast<double>(c.num_channels);
  }
  c.channel_mult = join_mult(mult);
  const int64_t first = shapes.shape("input_blocks.0.0.weight", 4)[0];
  if (static_cast<int64_t>(mult[0] * c.num_channels) != first) {
    throw InputError("input_blocks.0.0.weight has " + std::to_string(first) +
                     " channels but the first level has " +
                     format_number(mult[0] * c.num_channels));
  }
  return mult;
}

/// The downsampling rates (1 << level) of the levels with attention in an input or output block.
std::set<int> attention_rates(const ShapeIndex& shapes, int levels, int n) {
  std::set<int> attn_ds;
  for (int l = 0; l < levels; ++l) {
    for (int r = 0; r < n; ++r) {
      const auto idx = 1 + l * (n + 1) + r;
      if (shapes.has("input_blocks." + std::to_string(idx) + ".1.qkv.weight")) {
        attn_ds.insert(1 << l);
      }
    }
    for (int i = 0; i <= n; ++i) {
      const auto idx = (levels - 1 - l) * (n + 1) + i;
      if (shapes.has("output_blocks." + std::to_string(idx) + ".1.qkv.weight")) {
        attn_ds.insert(1 << l);
      }
    }
  }
  return attn_ds;
}

/// use_scale_shift_norm: the middle res block's emb_layers have 2*C rows (scale and shift) or C.
bool infer_scale_shift_norm(const ShapeIndex& shapes) {
  const auto& mid_out = shapes.shape("middle_block.0.out_layers.3.weight", 4);
  const auto& mid_emb = shapes.shape("middle_block.0.emb_layers.1.weight", 2);
  if (mid_emb[0] == 2 * mid_out[0]) return true;
  if (mid_emb[0] == mid_out[0]) return false;
  throw InputError("middle_block.0.emb_layers.1.weight " + shape_str(mid_emb) +
                   " is neither C nor 2*C rows");
}

/// `image_size` if given (> 0), else the size whose guided-diffusion default channel_mult is
/// `mult` (`channel_mult` is its text, for the error).
int resolve_image_size(int image_size, const std::vector<double>& mult,
                       const std::string& channel_mult) {
  if (image_size > 0) return image_size;
  for (int size : {512, 256, 128, 64}) {
    if (default_mult(size) == mult) image_size = size;
  }
  if (image_size <= 0) {
    throw UsageError("cannot infer image_size: channel_mult " + channel_mult +
                     " is no default of guided-diffusion; give the image size");
  }
  return image_size;
}

/// attention_resolutions as the configs list them: image_size / rate for each rate, ascending
/// rate = descending resolution.
std::string attention_resolutions_of(const std::set<int>& rates, int image_size) {
  std::string attn;
  for (int ds : rates) {
    if (image_size % ds != 0) {
      throw UsageError("image_size " + std::to_string(image_size) +
                       " is not divisible by the attention downsampling rate " +
                       std::to_string(ds));
    }
    attn += (attn.empty() ? "" : ",") + std::to_string(image_size / ds);
  }
  return attn;
}

/// Throws InputError unless the layout of `c` is exactly the file's names and shapes.
void check_reproduces(const UNetConfig& c, const ShapeIndex& shapes) {
  const UNetLayout expected = UNet::layout(c);
  if (expected.size() != shapes.all().size()) {
    throw InputError("inferred config (" + c.to_string() + ") has " +
                     std::to_string(expected.size()) + " tensors, the state_dict " +
                     std::to_string(shapes.all().size()));
  }
  for (const auto& [name, s] : expected) {
    auto it = shapes.all().find(name);
    if (it == shapes.all().end() || it->second != s) {
      throw InputError(
          "inferred config (" + c.to_string() + ") expects " + name + " " + shape_str(s) +
          ", the state_dict " +
          (it == shapes.all().end() ? std::string("lacks it") : shape_str(it->second)));
    }
  }
}

}  // namespace

UNetConfig infer_unet_config(const std::vector<std::pair<std::string, at::Tensor>>& state_dict,
                             int image_size) {
  const ShapeIndex shapes(state_dict);
  UNetConfig c = infer_widths(shapes);
  const int levels = infer_levels(shapes, c);
  const std::vector<double> mult = infer_channel_mult(shapes, c, levels);
  const std::set<int> attn_ds = attention_rates(shapes, levels, c.num_res_blocks);
  c.use_scale_shift_norm = infer_scale_shift_norm(shapes);
  c.image_size = resolve_image_size(image_size, mult, c.channel_mult);
  c.attention_resolutions = attention_resolutions_of(attn_ds, c.image_size);
  c.dropout = 0.0;
  c.use_fp16 = false;
  // The inferred config must reproduce the file exactly.
  check_reproduces(c, shapes);
  return c;
}

}  // namespace copaint
