// LPIPS v0.1: input scaling, torchvision trunk taps, unit-normalised squared feature differences,
// learned 1x1 heads, spatial mean, sum over taps. Trunks run functionally over named tensors.
#include "metrics/lpips.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <filesystem>
#include <sstream>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

/// One trunk convolution: torchvision name prefix, [out, in, k, k].
struct ConvSpec {
  std::string name;
  int64_t out, in, kernel;
};

struct BackboneSpec {
  std::string trunk_file;       ///< torchvision's published file name
  std::string trunk_prefix;     ///< prefix of other releases of the same trunk
  std::vector<ConvSpec> convs;  ///< every trunk tensor LPIPS uses (weight + bias each)
  std::vector<int64_t> tap_channels;
};

void add_fire(std::vector<ConvSpec>& convs, int index, int64_t in, int64_t squeeze,
              int64_t expand) {
  const std::string p = "features." + std::to_string(index) + ".";
  convs.push_back({p + "squeeze", squeeze, in, 1});
  convs.push_back({p + "expand1x1", expand, squeeze, 1});
  convs.push_back({p + "expand3x3", expand, squeeze, 3});
}

const BackboneSpec& backbone_spec(const std::string& backbone) {
  static const BackboneSpec alex{"alexnet-owt-7be5be79.pth",
                                 "alexnet-owt-",
                                 {{"features.0", 64, 3, 11},
                                  {"features.3", 192, 64, 5},
                                  {"features.6", 384, 192, 3},
                                  {"features.8", 256, 384, 3},
                                  {"features.10", 256, 256, 3}},
                                 {64, 192, 384, 256, 256}};
  static const BackboneSpec vgg = [] {
    BackboneSpec s{"vgg16-397923af.pth", "vgg16-", {}, {64, 128, 256, 512, 512}};
    const std::vector<std::pair<int, int64_t>> layers = {
        {0, 64},   {2, 64},   {5, 128},  {7, 128},  {10, 256}, {12, 256}, {14, 256},
        {17, 512}, {19, 512}, {21, 512}, {24, 512}, {26, 512}, {28, 512}};
    int64_t in = 3;
    for (const auto& [index, out] : layers) {
      s.convs.push_back({"features." + std::to_string(index), out, in, 3});
      in = out;
    }
    return s;
  }();
  static const BackboneSpec squeeze = [] {
    BackboneSpec s{"squeezenet1_1-b8a52dc0.pth",
                   "squeezenet1_1-",
                   {{"features.0", 64, 3, 3}},
                   {64, 128, 256, 384, 384, 512, 512}};
    add_fire(s.convs, 3, 64, 16, 64);
    add_fire(s.convs, 4, 128, 16, 64);
    add_fire(s.convs, 6, 128, 32, 128);
    add_fire(s.convs, 7, 256, 32, 128);
    add_fire(s.convs, 9, 256, 48, 192);
    add_fire(s.convs, 10, 384, 48, 192);
    add_fire(s.convs, 11, 384, 64, 256);
    add_fire(s.convs, 12, 512, 64, 256);
    return s;
  }();
  if (backbone == "alex") return alex;
  if (backbone == "vgg") return vgg;
  if (backbone == "squeeze") return squeeze;
  throw UsageError("lpips: unknown backbone '" + backbone + "' (use alex, vgg or squeeze)");
}

const at::Tensor* find(const LpipsTensors& tensors, const std::string& name) {
  for (const auto& [key, value] : tensors) {
    if (key == name) return &value;
  }
  return nullptr;
}

std::string shape_of(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << sizes;
  return os.str();
}

at::Tensor take(const LpipsTensors& tensors, const std::string& name,
                const std::vector<int64_t>& shape, const std::string& source,
                const std::string& backbone) {
  const at::Tensor* t = find(tensors, name);
  if (t == nullptr) {
    throw InputError("lpips: " + source + " has no tensor '" + name + "' (is it the " + backbone +
                     " file?)\n" + lpips_weights_help(backbone));
  }
  if (t->sizes() != at::IntArrayRef(shape)) {
    throw InputError("lpips: " + source + ": tensor '" + name + "' has shape " +
                     shape_of(t->sizes()) + ", expected " + shape_of(shape) + " for the " +
                     backbone + " backbone");
  }
  return t->detach().to(at::kFloat).contiguous();
}

std::string resolve_heads(const LpipsOptions& o) {
  if (!o.heads_file.empty()) return o.heads_file;
  const fs::path dir(o.weights_dir);
  const fs::path direct = dir / (o.backbone + ".pth");
  if (fs::exists(direct)) return direct.string();
  const fs::path nested = dir / ("v" + o.version) / (o.backbone + ".pth");  // lpips/weights/
  if (fs::exists(nested)) return nested.string();
  return direct.string();
}

std::string resolve_trunk(const LpipsOptions& o, const BackboneSpec& spec) {
  if (!o.trunk_file.empty()) return o.trunk_file;
  const fs::path dir(o.weights_dir);
  const fs::path direct = dir / spec.trunk_file;
  if (fs::exists(direct)) return direct.string();
  // Another torchvision release of the same trunk (e.g. alexnet-owt-4df8aa71.pth).
  std::error_code ec;
  std::vector<std::string> found;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(spec.trunk_prefix, 0) == 0 && it->path().extension() == ".pth") {
      found.push_back(it->path().string());
    }
  }
  if (!found.empty()) {
    std::sort(found.begin(), found.end());
    return found.front();
  }
  return direct.string();
}

LpipsTensors load_weights(const std::string& path, const char* what, const std::string& backbone) {
  if (!fs::is_regular_file(path)) {
    throw InputError(std::string("lpips: ") + what + " file '" + path + "' not found.\n" +
                     lpips_weights_help(backbone));
  }
  return load_state_dict(path);
}

const LpipsOptions& checked(const LpipsOptions& o) {
  backbone_spec(o.backbone);  // throws on unknown names
  if (o.version != "0.1") {
    throw UsageError("lpips: version '" + o.version + "' is not supported (only 0.1)");
  }
  if (o.weights_dir.empty() && (o.heads_file.empty() || o.trunk_file.empty())) {
    throw UsageError(
        "lpips: no weights given: set lpips.weights=DIR (or lpips.heads=FILE and "
        "lpips.trunk=FILE).\n" +
        lpips_weights_help(o.backbone));
  }
  return o;
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> lpips_trunk_shapes(
    const std::string& backbone) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const ConvSpec& c : backbone_spec(backbone).convs) {
    out.push_back({c.name + ".weight", {c.out, c.in, c.kernel, c.kernel}});
    out.push_back({c.name + ".bias", {c.out}});
  }
  return out;
}

std::vector<int64_t> lpips_head_channels(const std::string& backbone) {
  return backbone_spec(backbone).tap_channels;
}

std::string lpips_trunk_file_name(const std::string& backbone) {
  return backbone_spec(backbone).trunk_file;
}

std::string lpips_weights_help(const std::string& backbone) {
  const BackboneSpec& spec = backbone_spec(backbone);
  std::ostringstream os;
  os << "LPIPS " << backbone << " needs two files, placed in the lpips.weights folder "
     << "(or named by lpips.heads / lpips.trunk):\n"
     << "  heads: " << backbone << ".pth from https://github.com/richzhang/PerceptualSimilarity/"
     << "raw/master/lpips/weights/v0.1/" << backbone << ".pth (BSD-2-Clause)\n"
     << "  trunk: " << spec.trunk_file << " from https://download.pytorch.org/models/"
     << spec.trunk_file << " (torchvision's ImageNet weights)";
  return os.str();
}

Lpips::Lpips(const LpipsOptions& options) {
  checked(options);
  const std::string heads = resolve_heads(options);
  const std::string trunk = resolve_trunk(options, backbone_spec(options.backbone));
  const LpipsTensors head_tensors = load_weights(heads, "heads", options.backbone);
  const LpipsTensors trunk_tensors = load_weights(trunk, "trunk", options.backbone);
  *this = Lpips(options.backbone, head_tensors, trunk_tensors, "heads file '" + heads + "'",
                "trunk file '" + trunk + "'");
}

Lpips::Lpips(const std::string& backbone, const LpipsTensors& heads, const LpipsTensors& trunk,
             const std::string& heads_source, const std::string& trunk_source)
    : backbone_(backbone) {
  for (const auto& [name, shape] : lpips_trunk_shapes(backbone)) {
    trunk_.emplace_back(name, take(trunk, name, shape, trunk_source, backbone));
  }
  const std::vector<int64_t> channels = lpips_head_channels(backbone);
  for (size_t k = 0; k < channels.size(); ++k) {
    heads_.push_back(take(heads, "lin" + std::to_string(k) + ".model.1.weight",
                          {1, channels[k], 1, 1}, heads_source, backbone));
  }
  shift_ = at::tensor({-0.030f, -0.088f, -0.188f}).view({1, 3, 1, 1});
  scale_ = at::tensor({0.458f, 0.448f, 0.450f}).view({1, 3, 1, 1});
}

std::string Lpips::name() const { return "lpips_" + backbone_ + "_v0.1"; }

void Lpips::to(at::Device device) {
  for (auto& [name, t] : trunk_) t = t.to(device);
  for (auto& h : heads_) h = h.to(device);
  shift_ = shift_.to(device);
  scale_ = scale_.to(device);
}

at::Device Lpips::device() const { return shift_.device(); }

const at::Tensor& Lpips::trunk(const std::string& name) const {
  for (const auto& [key, value] : trunk_) {
    if (key == name) return value;
  }
  throw std::logic_error("lpips: internal: no trunk tensor " + name);
}

at::Tensor Lpips::conv(const std::string& name, const at::Tensor& x, int64_t stride,
                       int64_t padding) const {
  return at::relu(at::conv2d(x, trunk(name + ".weight"), trunk(name + ".bias"), stride, padding));
}

at::Tensor Lpips::fire(int64_t index, const at::Tensor& x) const {
  const std::string p = "features." + std::to_string(index) + ".";
  const at::Tensor s = conv(p + "squeeze", x, 1, 0);
  return at::cat({conv(p + "expand1x1", s, 1, 0), conv(p + "expand3x3", s, 1, 1)}, 1);
}

std::vector<at::Tensor> Lpips::features(const at::Tensor& input) const {
  std::vector<at::Tensor> taps;
  at::Tensor x = input;
  if (backbone_ == "alex") {
    x = conv("features.0", x, 4, 2);
    taps.push_back(x);
    x = conv("features.3", at::max_pool2d(x, 3, 2), 1, 2);
    taps.push_back(x);
    x = conv("features.6", at::max_pool2d(x, 3, 2), 1, 1);
    taps.push_back(x);
    x = conv("features.8", x, 1, 1);
    taps.push_back(x);
    x = conv("features.10", x, 1, 1);
    taps.push_back(x);
  } else if (backbone_ == "vgg") {
    // Blocks of 3x3 convolutions separated by 2x2 max-pooling; tap after each block.
    const std::vector<std::vector<int>> blocks = {
        {0, 2}, {5, 7}, {10, 12, 14}, {17, 19, 21}, {24, 26, 28}};
    for (size_t b = 0; b < blocks.size(); ++b) {
      if (b > 0) x = at::max_pool2d(x, 2, 2);
      for (int index : blocks[b]) x = conv("features." + std::to_string(index), x, 1, 1);
      taps.push_back(x);
    }
  } else {  // squeeze
    auto pool = [](const at::Tensor& t) {
      return at::max_pool2d(t, 3, 2, /*padding=*/0, /*dilation=*/1, /*ceil_mode=*/true);
    };
    x = conv("features.0", x, 2, 0);
    taps.push_back(x);
    x = fire(4, fire(3, pool(x)));
    taps.push_back(x);
    x = fire(7, fire(6, pool(x)));
    taps.push_back(x);
    x = fire(9, pool(x));
    taps.push_back(x);
    for (int index : {10, 11, 12}) {
      x = fire(index, x);
      taps.push_back(x);
    }
  }
  return taps;
}

at::Tensor Lpips::operator()(const at::Tensor& a, const at::Tensor& b) const {
  if (a.dim() != 4 || b.dim() != 4 || (a.size(1) != 1 && a.size(1) != 3) ||
      a.sizes().slice(1) != b.sizes().slice(1) || (b.size(0) != 1 && b.size(0) != a.size(0))) {
    throw InputError("lpips: inputs must be [B,C,H,W] and [B or 1,C,H,W] with C = 1 or 3, got " +
                     shape_of(a.sizes()) + " and " + shape_of(b.sizes()));
  }
  at::NoGradGuard no_grad;
  auto prepare = [&](const at::Tensor& x) {
    at::Tensor y = x.to(device(), at::kFloat);
    if (y.size(1) == 1) y = y.expand({y.size(0), 3, y.size(2), y.size(3)});
    return (y - shift_) / scale_;
  };
  const std::vector<at::Tensor> fa = features(prepare(a));
  const std::vector<at::Tensor> fb = features(prepare(b));
  auto unit = [](const at::Tensor& f) {
    return f / (at::sqrt(f.pow(2).sum(1, /*keepdim=*/true)) + 1e-10);
  };
  at::Tensor total;
  for (size_t k = 0; k < fa.size(); ++k) {
    const at::Tensor diff = (unit(fa[k]) - unit(fb[k])).pow(2);
    const at::Tensor layer = at::conv2d(diff, heads_[k]).mean({2, 3});  // [B,1]
    total = total.defined() ? total + layer : layer;
  }
  return total.view({a.size(0)}).to(a.device());
}

}  // namespace copaint
