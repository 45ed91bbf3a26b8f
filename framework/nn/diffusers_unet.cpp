// UNet2DModel's architecture and forward pass, and DiffusersDenoiser. Written from the math of
// diffusers 0.27 (UNet2DModel.forward, DownBlock2D / AttnDownBlock2D / UNetMidBlock2D /
// UpBlock2D / AttnUpBlock2D, ResnetBlock2D, Attention with AttnProcessor, Downsample2D,
// Upsample2D, get_timestep_embedding); no code copied.
#include "framework/nn/diffusers_unet.h"

#include <cmath>
#include <map>
#include <set>

#include <ATen/ATen.h>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/nn/onednn_ops.h"

namespace copaint {
namespace {

using Layout = std::vector<std::pair<std::string, std::vector<int64_t>>>;

void add_norm(Layout& l, const std::string& name, int64_t ch) {
  l.push_back({name + ".weight", {ch}});
  l.push_back({name + ".bias", {ch}});
}
void add_conv(Layout& l, const std::string& name, int64_t in, int64_t out, int64_t k) {
  l.push_back({name + ".weight", {out, in, k, k}});
  l.push_back({name + ".bias", {out}});
}
void add_linear(Layout& l, const std::string& name, int64_t in, int64_t out) {
  l.push_back({name + ".weight", {out, in}});
  l.push_back({name + ".bias", {out}});
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

/// diffusers' deprecated attention names (AttentionBlock before 0.14) -> the current ones.
std::string current_name(const std::string& name) {
  static const std::vector<std::pair<std::string, std::string>> renames = {
      {".query.", ".to_q."},
      {".key.", ".to_k."},
      {".value.", ".to_v."},
      {".proj_attn.", ".to_out.0."}};
  if (name.find(".attentions.") == std::string::npos) return name;
  for (const auto& [from, to] : renames) {
    const size_t at = name.find(from);
    if (at != std::string::npos) return name.substr(0, at) + to + name.substr(at + from.size());
  }
  return name;
}

at::Tensor conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride,
                int64_t padding) {
  return onednn_conv2d(x, w, b, stride, padding);
}

}  // namespace

DiffusersUNet::Attention DiffusersUNet::make_attention(const std::string& prefix, int64_t channels,
                                                       int64_t groups, bool norm,
                                                       double rescale) const {
  // UNet2DModel passes attention_head_dim, or the block's channels when it is null (one head).
  const int64_t dim = config_.attention_head_dim > 0 ? config_.attention_head_dim : channels;
  return Attention{prefix, channels, channels / dim, dim, norm, groups, rescale};
}

DiffusersUNet::Block DiffusersUNet::make_down_block(int64_t i, int64_t in_ch) const {
  const auto& c = config_;
  const int64_t out_ch = c.block_out_channels[i];
  Block b;
  b.prefix = "down_blocks." + std::to_string(i);
  for (int64_t j = 0; j < c.layers_per_block; ++j) {
    b.resnets.push_back(
        {b.prefix + ".resnets." + std::to_string(j), j == 0 ? in_ch : out_ch, out_ch, 1.0});
    if (c.down_block_types[i] == "AttnDownBlock2D") {
      b.attentions.push_back(make_attention(b.prefix + ".attentions." + std::to_string(j), out_ch,
                                            c.norm_num_groups, true, 1.0));
    }
  }
  b.resample = i + 1 < static_cast<int64_t>(c.block_out_channels.size());
  b.channels = out_ch;
  return b;
}

DiffusersUNet::Block DiffusersUNet::make_mid_block() const {
  // UNetMidBlock2D: resnet, then (attention, resnet) once. Its attention has a GroupNorm with
  // attn_norm_num_groups, or norm_num_groups for the default time conditioning, else none.
  const auto& c = config_;
  const int64_t ch = c.block_out_channels.back();
  Block b;
  b.prefix = "mid_block";
  for (int j = 0; j < 2; ++j) {
    b.resnets.push_back(
        {"mid_block.resnets." + std::to_string(j), ch, ch, c.mid_block_scale_factor});
  }
  if (c.add_attention) {
    const bool norm = c.attn_norm_num_groups > 0 || c.resnet_time_scale_shift == "default";
    const int64_t groups = c.attn_norm_num_groups > 0 ? c.attn_norm_num_groups : c.norm_num_groups;
    b.attentions.push_back(
        make_attention("mid_block.attentions.0", ch, groups, norm, c.mid_block_scale_factor));
  }
  return b;
}

DiffusersUNet::Block DiffusersUNet::make_up_block(int64_t i, int64_t prev_out) const {
  // Up block i (deepest first) has layers_per_block + 1 resnets; resnet j concatenates a skip
  // of the level's channels, the last one the skip of the level below (in_ch).
  const auto& c = config_;
  const auto& chans = c.block_out_channels;
  const int64_t levels = static_cast<int64_t>(chans.size());
  const int64_t out_ch = chans[levels - 1 - i];
  const int64_t in_ch = chans[levels - 1 - std::min(i + 1, levels - 1)];
  Block b;
  b.prefix = "up_blocks." + std::to_string(i);
  const int64_t n = c.layers_per_block + 1;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t skip = j == n - 1 ? in_ch : out_ch;
    const int64_t res_in = j == 0 ? prev_out : out_ch;
    b.resnets.push_back({b.prefix + ".resnets." + std::to_string(j), res_in + skip, out_ch, 1.0});
    if (c.up_block_types[i] == "AttnUpBlock2D") {
      b.attentions.push_back(make_attention(b.prefix + ".attentions." + std::to_string(j), out_ch,
                                            c.norm_num_groups, true, 1.0));
    }
  }
  b.resample = i + 1 < levels;
  b.channels = out_ch;
  return b;
}

void DiffusersUNet::add_block_layout(const Block& b) {
  // diffusers' module order: a block's attentions and resnets are two ModuleLists (attentions
  // first in Attn*Block2D and the mid block), then the resampler.
  Layout& l = layout_;
  const int64_t temb = config_.time_embed_dim();
  const bool scale_shift = config_.resnet_time_scale_shift == "scale_shift";
  for (const Attention& a : b.attentions) {
    if (a.norm) add_norm(l, a.prefix + ".group_norm", a.channels);
    const int64_t inner = a.heads * a.head_dim;
    for (const char* proj : {".to_q", ".to_k", ".to_v"}) {
      add_linear(l, a.prefix + proj, a.channels, inner);
    }
    add_linear(l, a.prefix + ".to_out.0", inner, a.channels);
  }
  for (const Resnet& r : b.resnets) {
    add_norm(l, r.prefix + ".norm1", r.in);
    add_conv(l, r.prefix + ".conv1", r.in, r.out, 3);
    add_linear(l, r.prefix + ".time_emb_proj", temb, scale_shift ? 2 * r.out : r.out);
    add_norm(l, r.prefix + ".norm2", r.out);
    add_conv(l, r.prefix + ".conv2", r.out, r.out, 3);
    if (r.in != r.out) add_conv(l, r.prefix + ".conv_shortcut", r.in, r.out, 1);
  }
  if (b.resample) {
    const bool down = b.prefix.rfind("down", 0) == 0;
    add_conv(l, b.prefix + (down ? ".downsamplers.0.conv" : ".upsamplers.0.conv"), b.channels,
             b.channels, 3);
  }
}

DiffusersUNet::DiffusersUNet(const DiffusersUNetConfig& config) : config_(config) {
  const auto& chans = config_.block_out_channels;
  const int64_t levels = static_cast<int64_t>(chans.size());
  const int64_t temb = config_.time_embed_dim();
  add_conv(layout_, "conv_in", config_.in_channels, chans[0], 3);
  add_linear(layout_, "time_embedding.linear_1", chans[0], temb);
  add_linear(layout_, "time_embedding.linear_2", temb, temb);
  for (int64_t i = 0; i < levels; ++i) {
    down_.push_back(make_down_block(i, chans[std::max<int64_t>(i - 1, 0)]));
    add_block_layout(down_.back());
  }
  mid_ = make_mid_block();
  add_block_layout(mid_);
  for (int64_t i = 0; i < levels; ++i) {
    up_.push_back(make_up_block(i, i == 0 ? chans.back() : chans[levels - i]));
    add_block_layout(up_.back());
  }
  add_norm(layout_, "conv_norm_out", chans[0]);
  add_conv(layout_, "conv_out", chans[0], config_.out_channels, 3);
  for (const auto& [name, shape] : layout_) params_[name] = at::zeros(shape, at::kFloat);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> DiffusersUNet::layout() const {
  return layout_;
}

int64_t DiffusersUNet::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

const at::Tensor& DiffusersUNet::p(const std::string& name) const {
  const auto it = params_.find(name);
  if (it == params_.end()) throw UsageError("DiffusersUNet: no parameter '" + name + "'");
  return it->second;
}

void DiffusersUNet::load(const std::vector<std::pair<std::string, at::Tensor>>& state_dict) {
  std::map<std::string, at::Tensor> given;
  for (const auto& [name, t] : state_dict) given[current_name(name)] = t;
  std::vector<std::string> missing, shape, unexpected;
  std::set<std::string> known;
  for (const auto& [name, s] : layout_) {
    known.insert(name);
    const auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else if (it->second.sizes().vec() != s) {
      shape.push_back(name + " " + shape_str(it->second.sizes().vec()) + " (expected " +
                      shape_str(s) + ")");
    }
  }
  for (const auto& [name, t] : given) {
    if (!known.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !shape.empty() || !unexpected.empty()) {
    const auto list = [](const std::vector<std::string>& v) {
      std::string out;
      const size_t shown = std::min<size_t>(v.size(), 8);
      for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + v[i];
      if (v.size() > shown) out += ", ... (" + std::to_string(v.size()) + " in all)";
      return out;
    };
    std::string msg = "state_dict does not match config.json:";
    if (!missing.empty()) msg += " missing " + list(missing) + ";";
    if (!unexpected.empty()) msg += " unexpected " + list(unexpected) + ";";
    if (!shape.empty()) msg += " mis-shaped " + list(shape) + ";";
    msg.pop_back();
    throw InputError(msg);
  }
  for (auto& [name, t] : params_) {
    const at::Tensor& src = given.at(name);
    t = src.to(t.device(), t.scalar_type()).contiguous().clone();
  }
}

void DiffusersUNet::to(const c10::Device& device, at::ScalarType dtype) {
  for (auto& [name, t] : params_) t = t.to(device, dtype);
}

void DiffusersUNet::requires_grad_(bool requires_grad) {
  for (auto& [name, t] : params_) t.requires_grad_(requires_grad);
}

at::Tensor DiffusersUNet::resnet(const Resnet& r, const at::Tensor& x,
                                 const at::Tensor& emb) const {
  const auto& c = config_;
  const std::string& q = r.prefix;
  at::Tensor h = at::group_norm(x, c.norm_num_groups, p(q + ".norm1.weight"), p(q + ".norm1.bias"),
                                c.norm_eps);
  h = conv(at::silu(h), p(q + ".conv1.weight"), p(q + ".conv1.bias"), 1, 1);
  const at::Tensor t =
      at::linear(at::silu(emb), p(q + ".time_emb_proj.weight"), p(q + ".time_emb_proj.bias"))
          .unsqueeze(-1)
          .unsqueeze(-1);
  if (c.resnet_time_scale_shift == "scale_shift") {
    const auto parts = t.chunk(2, 1);
    h = at::group_norm(h, c.norm_num_groups, p(q + ".norm2.weight"), p(q + ".norm2.bias"),
                       c.norm_eps);
    h = h * (1 + parts[0]) + parts[1];
  } else {
    h = at::group_norm(h + t, c.norm_num_groups, p(q + ".norm2.weight"), p(q + ".norm2.bias"),
                       c.norm_eps);
  }
  h = conv(at::silu(h), p(q + ".conv2.weight"), p(q + ".conv2.bias"), 1, 1);
  const at::Tensor skip =
      r.in != r.out ? conv(x, p(q + ".conv_shortcut.weight"), p(q + ".conv_shortcut.bias"), 1, 0)
                    : x;
  at::Tensor out = skip + h;
  if (r.scale != 1.0) out = out / r.scale;
  return out;
}

at::Tensor DiffusersUNet::attention(const Attention& a, const at::Tensor& x) const {
  // AttnProcessor: tokens [B, HW, C], GroupNorm over channels, per-head softmax(q k^T * d^-1/2)
  // in float32 (upcast_softmax), to_out, residual, divided by rescale_output_factor.
  const std::string& q = a.prefix;
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor h = x.reshape({B, C, H * W});
  if (a.norm) {
    h = at::group_norm(h, a.groups, p(q + ".group_norm.weight"), p(q + ".group_norm.bias"),
                       config_.norm_eps);
  }
  h = h.transpose(1, 2);                         // [B, HW, C]
  const auto heads = [&](const at::Tensor& t) {  // [B, HW, inner] -> [B * heads, HW, d]
    return t.reshape({B, H * W, a.heads, a.head_dim})
        .permute({0, 2, 1, 3})
        .reshape({B * a.heads, H * W, a.head_dim});
  };
  const at::Tensor query = heads(at::linear(h, p(q + ".to_q.weight"), p(q + ".to_q.bias")));
  const at::Tensor key = heads(at::linear(h, p(q + ".to_k.weight"), p(q + ".to_k.bias")));
  const at::Tensor value = heads(at::linear(h, p(q + ".to_v.weight"), p(q + ".to_v.bias")));
  const double scale = 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  at::Tensor scores = at::bmm(query, key.transpose(1, 2)) * scale;
  const at::Tensor probs = at::softmax(scores.to(at::kFloat), -1).to(query.scalar_type());
  at::Tensor out = at::bmm(probs, value)
                       .reshape({B, a.heads, H * W, a.head_dim})
                       .permute({0, 2, 1, 3})
                       .reshape({B, H * W, a.heads * a.head_dim});
  out = at::linear(out, p(q + ".to_out.0.weight"), p(q + ".to_out.0.bias"));
  out = out.transpose(1, 2).reshape({B, C, H, W}) + x;
  if (a.rescale != 1.0) out = out / a.rescale;
  return out;
}

at::Tensor DiffusersUNet::time_embedding(const at::Tensor& t, int64_t batch,
                                         const at::Device& device) const {
  // get_timestep_embedding in float32: exp(-ln(10000) * i / (half - freq_shift)), t * freqs,
  // [sin, cos] ([cos, sin] with flip_sin_to_cos), zero-padded to an odd width.
  const int64_t dim = config_.block_out_channels[0], half = dim / 2;
  at::Tensor steps = t.dim() == 0 ? t.reshape({1}) : t;
  steps = steps.to(device).to(at::kFloat);
  if (steps.size(0) == 1 && batch > 1) steps = steps.expand({batch});
  const at::Tensor exponent =
      at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(device)) *
      (-std::log(10000.0)) / (static_cast<double>(half) - config_.freq_shift);
  const at::Tensor args = steps.unsqueeze(1) * at::exp(exponent).unsqueeze(0);
  at::Tensor emb = config_.flip_sin_to_cos ? at::cat({at::cos(args), at::sin(args)}, -1)
                                           : at::cat({at::sin(args), at::cos(args)}, -1);
  if (dim % 2) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

at::Tensor DiffusersUNet::forward(const at::Tensor& x, const at::Tensor& t) const {
  const auto& c = config_;
  const int64_t levels = static_cast<int64_t>(c.block_out_channels.size());
  const int64_t factor = int64_t{1} << (levels - 1);
  if (x.dim() != 4 || x.size(1) != c.in_channels || x.size(2) % factor || x.size(3) % factor) {
    throw InputError("DiffusersUNet::forward: x must be [B, " + std::to_string(c.in_channels) +
                     ", H, W] with H, W multiples of " + std::to_string(factor) + ", got " +
                     shape_str(x.sizes().vec()));
  }
  if (t.dim() > 1 || (t.dim() == 1 && t.size(0) != x.size(0) && t.size(0) != 1)) {
    throw InputError("DiffusersUNet::forward: t must be 0-d or [B]");
  }
  const at::ScalarType dtype = p("conv_in.weight").scalar_type();
  at::Tensor h = x.to(dtype);
  if (c.center_input_sample) h = 2 * h - 1.0;
  at::Tensor emb = time_embedding(t, x.size(0), h.device()).to(dtype);
  emb = at::linear(emb, p("time_embedding.linear_1.weight"), p("time_embedding.linear_1.bias"));
  emb = at::linear(at::silu(emb), p("time_embedding.linear_2.weight"),
                   p("time_embedding.linear_2.bias"));

  h = conv(h, p("conv_in.weight"), p("conv_in.bias"), 1, 1);
  std::vector<at::Tensor> skips = {h};
  for (const Block& b : down_) {
    for (size_t j = 0; j < b.resnets.size(); ++j) {
      h = resnet(b.resnets[j], h, emb);
      if (!b.attentions.empty()) h = attention(b.attentions[j], h);
      skips.push_back(h);
    }
    if (b.resample) {
      // Downsample2D: padding 0 pads one zero row/column at the right/bottom first.
      const std::string w = b.prefix + ".downsamplers.0.conv";
      const at::Tensor in = c.downsample_padding == 0 ? at::constant_pad_nd(h, {0, 1, 0, 1}) : h;
      h = conv(in, p(w + ".weight"), p(w + ".bias"), 2, c.downsample_padding);
      skips.push_back(h);
    }
  }
  h = resnet(mid_.resnets[0], h, emb);
  if (!mid_.attentions.empty()) h = attention(mid_.attentions[0], h);
  h = resnet(mid_.resnets[1], h, emb);
  for (const Block& b : up_) {
    for (size_t j = 0; j < b.resnets.size(); ++j) {
      h = at::cat({h, skips.back()}, 1);
      skips.pop_back();
      h = resnet(b.resnets[j], h, emb);
      if (!b.attentions.empty()) h = attention(b.attentions[j], h);
    }
    if (b.resample) {
      const std::string w = b.prefix + ".upsamplers.0.conv";
      h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
      h = conv(h, p(w + ".weight"), p(w + ".bias"), 1, 1);
    }
  }
  h = at::group_norm(h, c.norm_num_groups, p("conv_norm_out.weight"), p("conv_norm_out.bias"),
                     c.norm_eps);
  h = conv(at::silu(h), p("conv_out.weight"), p("conv_out.bias"), 1, 1);
  return h.to(x.scalar_type());
}

std::shared_ptr<DiffusersUNet> load_diffusers_unet(const DiffusersUNetConfig& config,
                                                   const std::string& weights) {
  auto unet = std::make_shared<DiffusersUNet>(config);
  const StateDict sd = load_finite_state_dict(weights);
  try {
    unet->load(sd);
  } catch (const InputError& e) {
    throw InputError(weights + ": " + e.what());
  }
  unet->requires_grad_(false);
  return unet;
}

DiffusersDenoiser::DiffusersDenoiser(std::shared_ptr<DiffusersUNet> unet,
                                     DiffusersSchedulerConfig scheduler)
    : unet_(std::move(unet)), scheduler_(std::move(scheduler)), schedule_(scheduler_.schedule()) {
  alphas_cumprod_ = at::tensor(schedule_.alphas_cumprod, at::kDouble);
  if (scheduler_.variance() == ModelVariance::kLearnedRange && !learn_sigma()) {
    throw InputError("variance_type learned_range needs out_channels = 2 * in_channels");
  }
}

std::unique_ptr<DiffusersDenoiser> DiffusersDenoiser::from_folder(const std::string& dir,
                                                                  const DiffusersPreset* preset) {
  const DiffusersFolder folder = find_diffusers_folder(dir, preset == nullptr);
  std::vector<std::string> missing, ignored;
  DiffusersUNetConfig config;
  if (preset) {
    config = parse_diffusers_unet_config(preset->unet_json, preset->name + "'s config");
    if (!folder.config.empty()) {
      const DiffusersUNetConfig own = read_diffusers_unet_config(folder.config);
      if (own.to_string() != config.to_string()) {
        throw InputError(folder.config + ": not the architecture of " + preset->name + " (" +
                         preset->repository + "): load it with --model diffusers");
      }
    }
  } else {
    config = read_diffusers_unet_config(folder.config, &missing);
  }
  if (!missing.empty()) {
    std::string keys;
    for (const auto& k : missing) keys += (keys.empty() ? "" : ", ") + k;
    log_info(folder.config + ": diffusers' defaults for the absent keys " + keys);
  }
  DiffusersSchedulerConfig scheduler;
  if (folder.scheduler_config.empty() && preset) {
    scheduler = parse_diffusers_scheduler_config(preset->scheduler_json, preset->name);
  } else if (folder.scheduler_config.empty()) {
    log_warn("diffusers folder '" + dir +
             "' has no scheduler_config.json: DDPMScheduler's defaults (linear betas "
             "1e-4..0.02 over 1000 steps, epsilon, fixed_small)");
  } else {
    scheduler = read_diffusers_scheduler_config(folder.scheduler_config, &ignored);
    if (!ignored.empty()) {
      std::string keys;
      for (const auto& k : ignored) keys += (keys.empty() ? "" : ", ") + k;
      log_info(folder.scheduler_config + ": keys not used here: " + keys);
    }
  }
  auto unet = load_diffusers_unet(config, folder.weights);
  try {
    return std::make_unique<DiffusersDenoiser>(std::move(unet), std::move(scheduler));
  } catch (const InputError& e) {
    throw InputError(folder.scheduler_config + ": " + e.what());
  }
}

void DiffusersDenoiser::to(const c10::Device& device) {
  unet_->to(device);
  alphas_cumprod_ = alphas_cumprod_.to(device);
}

std::string DiffusersDenoiser::describe() const {
  return "diffusers UNet2DModel " + unet_->config().to_string() + "; " + scheduler_.to_string();
}

at::Tensor DiffusersDenoiser::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor&) {
  at::Tensor out = unet_->forward(x, t);
  if (scheduler_.prediction_type == "epsilon") return out;
  const int64_t c = x.size(1);
  const at::Tensor ab = alphas_cumprod_.index({t.to(at::kLong).to(alphas_cumprod_.device())})
                            .to(x.scalar_type())
                            .view({-1, 1, 1, 1});
  const at::Tensor pred = out.narrow(1, 0, c);
  at::Tensor eps;
  if (scheduler_.prediction_type == "v_prediction") {
    eps = ab.sqrt() * pred + (1 - ab).sqrt() * x;  // v = sqrt(ab) eps - sqrt(1-ab) x0
  } else {
    eps = (x - ab.sqrt() * pred) / (1 - ab).sqrt();  // "sample": the network predicts x0
  }
  return out.size(1) == c ? eps : at::cat({eps, out.narrow(1, c, out.size(1) - c)}, 1);
}

}  // namespace copaint
