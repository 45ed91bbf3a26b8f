// The FID Inception-v3 up to pool3: the layer table (names, shapes, strides, paddings of
// torchvision's Inception3 with num_classes=1008, aux_logits=False), weight loading and checks,
// the formula weights for tests, and the forward pass with pytorch-fid's FID-specific pooling:
// average pools that leave the zero padding out (FIDInceptionA, C, E_1) and the max pool of the
// last block (FIDInceptionE_2).
#include "metrics/inception.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"

namespace copaint {

const char* const kFidInceptionWeightsUrl =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth";

namespace {

/// One BasicConv2d of the network: torchvision's module name, [out, in, kh, kw], stride, padding.
struct ConvSpec {
  std::string name;
  int64_t out, in, kh, kw;
  int64_t stride = 1, pad_h = 0, pad_w = 0;
};

constexpr int64_t kClasses = 1008;  // the TF graph's 1008 logits (fc is loaded, not used)
constexpr int64_t kFeatures = 2048;
constexpr double kBatchNormEps = 1e-3;  // torchvision's BasicConv2d

void add_a(std::vector<ConvSpec>& s, const std::string& p, int64_t in, int64_t pool_features) {
  s.push_back({p + ".branch1x1", 64, in, 1, 1});
  s.push_back({p + ".branch5x5_1", 48, in, 1, 1});
  s.push_back({p + ".branch5x5_2", 64, 48, 5, 5, 1, 2, 2});
  s.push_back({p + ".branch3x3dbl_1", 64, in, 1, 1});
  s.push_back({p + ".branch3x3dbl_2", 96, 64, 3, 3, 1, 1, 1});
  s.push_back({p + ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1});
  s.push_back({p + ".branch_pool", pool_features, in, 1, 1});
}

void add_c(std::vector<ConvSpec>& s, const std::string& p, int64_t c7) {
  const int64_t in = 768;
  s.push_back({p + ".branch1x1", 192, in, 1, 1});
  s.push_back({p + ".branch7x7_1", c7, in, 1, 1});
  s.push_back({p + ".branch7x7_2", c7, c7, 1, 7, 1, 0, 3});
  s.push_back({p + ".branch7x7_3", 192, c7, 7, 1, 1, 3, 0});
  s.push_back({p + ".branch7x7dbl_1", c7, in, 1, 1});
  s.push_back({p + ".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0});
  s.push_back({p + ".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3});
  s.push_back({p + ".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0});
  s.push_back({p + ".branch7x7dbl_5", 192, c7, 1, 7, 1, 0, 3});
  s.push_back({p + ".branch_pool", 192, in, 1, 1});
}

void add_e(std::vector<ConvSpec>& s, const std::string& p, int64_t in) {
  s.push_back({p + ".branch1x1", 320, in, 1, 1});
  s.push_back({p + ".branch3x3_1", 384, in, 1, 1});
  s.push_back({p + ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1});
  s.push_back({p + ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0});
  s.push_back({p + ".branch3x3dbl_1", 448, in, 1, 1});
  s.push_back({p + ".branch3x3dbl_2", 384, 448, 3, 3, 1, 1, 1});
  s.push_back({p + ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1});
  s.push_back({p + ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0});
  s.push_back({p + ".branch_pool", 192, in, 1, 1});
}

/// Every BasicConv2d in state_dict order (torchvision's Inception3.__init__).
const std::vector<ConvSpec>& conv_specs() {
  static const std::vector<ConvSpec> specs = [] {
    std::vector<ConvSpec> s;
    s.push_back({"Conv2d_1a_3x3", 32, 3, 3, 3, 2});
    s.push_back({"Conv2d_2a_3x3", 32, 32, 3, 3});
    s.push_back({"Conv2d_2b_3x3", 64, 32, 3, 3, 1, 1, 1});
    s.push_back({"Conv2d_3b_1x1", 80, 64, 1, 1});
    s.push_back({"Conv2d_4a_3x3", 192, 80, 3, 3});
    add_a(s, "Mixed_5b", 192, 32);
    add_a(s, "Mixed_5c", 256, 64);
    add_a(s, "Mixed_5d", 288, 64);
    s.push_back({"Mixed_6a.branch3x3", 384, 288, 3, 3, 2});
    s.push_back({"Mixed_6a.branch3x3dbl_1", 64, 288, 1, 1});
    s.push_back({"Mixed_6a.branch3x3dbl_2", 96, 64, 3, 3, 1, 1, 1});
    s.push_back({"Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2});
    add_c(s, "Mixed_6b", 128);
    add_c(s, "Mixed_6c", 160);
    add_c(s, "Mixed_6d", 160);
    add_c(s, "Mixed_6e", 192);
    s.push_back({"Mixed_7a.branch3x3_1", 192, 768, 1, 1});
    s.push_back({"Mixed_7a.branch3x3_2", 320, 192, 3, 3, 2});
    s.push_back({"Mixed_7a.branch7x7x3_1", 192, 768, 1, 1});
    s.push_back({"Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3});
    s.push_back({"Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0});
    s.push_back({"Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2});
    add_e(s, "Mixed_7b", 1280);
    add_e(s, "Mixed_7c", 2048);
    return s;
  }();
  return specs;
}

const std::vector<std::string>& bn_suffixes() {
  static const std::vector<std::string> s = {".bn.weight", ".bn.bias", ".bn.running_mean",
                                             ".bn.running_var"};
  return s;
}

std::string shape_of(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << sizes;
  return os.str();
}

/// "a, b, c (and N more)".
std::string some_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 3; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 3) out += " (and " + std::to_string(names.size() - 3) + " more)";
  return out;
}

/// The tensors by name, after checking that every needed tensor is there with its shape and
/// that nothing else is (a torchvision Inception file has AuxLogits.*, a 1000-class fc).
std::map<std::string, at::Tensor> checked_tensors(const InceptionTensors& tensors,
                                                  const std::string& source) {
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : tensors) by_name[name] = t;
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected = fid_inception_shapes();
  std::set<std::string> known;
  std::vector<std::string> missing;
  for (const auto& [name, shape] : expected) {
    known.insert(name);
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != at::IntArrayRef(shape)) {
      throw InputError("fid inception: " + source + ": tensor '" + name + "' has shape " +
                       shape_of(it->second.sizes()) + ", expected " + shape_of(shape) +
                       " (is it pt_inception-2015-12-05-6726825d.pth?)");
    }
  }
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"fc.weight", {kClasses, kFeatures}}, {"fc.bias", {kClasses}}}) {
    known.insert(name);
    const auto it = by_name.find(name);
    if (it != by_name.end() && it->second.sizes() != at::IntArrayRef(shape)) {
      throw InputError("fid inception: " + source + ": tensor '" + name + "' has shape " +
                       shape_of(it->second.sizes()) + ", expected " + shape_of(shape) +
                       " (the FID Inception has 1008 classes; torchvision's has 1000)");
    }
  }
  std::vector<std::string> unknown;
  for (const auto& [name, t] : by_name) {
    const bool counter = name.size() > 20 && name.rfind(".num_batches_tracked") == name.size() - 20;
    if (!known.count(name) && !counter) unknown.push_back(name);
  }
  if (!missing.empty() || !unknown.empty()) {
    std::string what;
    if (!missing.empty()) what += "lacks " + some_names(missing);
    if (!unknown.empty()) {
      what += std::string(what.empty() ? "" : "; ") + "has tensors the FID Inception does not (" +
              some_names(unknown) + ")";
    }
    throw InputError("fid inception: " + source + " " + what +
                     ": is it pt_inception-2015-12-05-6726825d.pth?\n" +
                     fid_inception_weights_help());
  }
  return by_name;
}

uint64_t fnv1a64(const std::string& text) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

/// splitmix64's finaliser of key + (index + 1) * golden ratio, as a double in [0, 1).
double splitmix_unit(uint64_t key, int64_t index) {
  uint64_t z = key + static_cast<uint64_t>(index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

std::string fid_inception_weights_help() {
  return std::string("FID and KID need pytorch-fid's Inception weights (95 MB): download ") +
         kFidInceptionWeightsUrl + " (Apache-2.0) and set fid.weights=FILE (kid.weights=FILE).";
}

std::vector<std::pair<std::string, std::vector<int64_t>>> fid_inception_shapes() {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const ConvSpec& c : conv_specs()) {
    out.push_back({c.name + ".conv.weight", {c.out, c.in, c.kh, c.kw}});
    for (const std::string& suffix : bn_suffixes()) out.push_back({c.name + suffix, {c.out}});
  }
  return out;
}

double formula_uniform(const std::string& name, int64_t index) {
  return splitmix_unit(fnv1a64(name), index);
}

at::Tensor formula_uniform_tensor(const std::string& name, const std::vector<int64_t>& shape) {
  at::Tensor out = at::empty(shape, at::kDouble);
  double* p = out.data_ptr<double>();
  const uint64_t key = fnv1a64(name);
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = splitmix_unit(key, i);
  return out;
}

namespace {

/// Tensor `name` of fid_inception_formula_weights(), float32.
at::Tensor formula_weight(const std::string& name, const std::vector<int64_t>& shape) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  const at::Tensor u = formula_uniform_tensor(name, shape);
  const at::Tensor s = 2.0 * u - 1.0;
  at::Tensor v;
  if (ends_with("conv.weight")) {
    v = s * (std::sqrt(3.0) * std::sqrt(2.0 / double(shape[1] * shape[2] * shape[3])));
  } else if (ends_with("bn.weight") || ends_with("bn.running_var")) {
    v = 0.5 + u;
  } else if (ends_with("bn.bias")) {
    v = 0.2 * s;
  } else if (ends_with("bn.running_mean")) {
    v = 0.1 * s;
  } else {
    v = 0.01 * s;
  }
  return v.to(at::kFloat);
}

/// Whether `tensors` are the formula stand-in: its first convolution's weight is the formula's.
bool is_formula(const std::map<std::string, at::Tensor>& tensors) {
  const std::string first = fid_inception_shapes().front().first;
  const at::Tensor given = tensors.at(first).detach().to(at::kFloat);
  const at::Tensor formula = formula_weight(first, given.sizes().vec());
  return at::equal(given, formula);
}

}  // namespace

InceptionTensors fid_inception_formula_weights() {
  auto shapes = fid_inception_shapes();
  shapes.push_back({"fc.weight", {kClasses, kFeatures}});
  shapes.push_back({"fc.bias", {kClasses}});
  InceptionTensors out;
  for (const auto& [name, shape] : shapes) out.emplace_back(name, formula_weight(name, shape));
  return out;
}

FidInception::FidInception(const std::string& weights_file)
    : FidInception(
          [&] {
            if (weights_file.empty()) {
              throw UsageError("fid inception: no weights file given.\n" +
                               fid_inception_weights_help());
            }
            if (!std::filesystem::is_regular_file(weights_file)) {
              throw InputError("fid inception: weights file '" + weights_file + "' not found.\n" +
                               fid_inception_weights_help());
            }
            return load_state_dict(weights_file);
          }(),
          "weights file '" + weights_file + "'") {}

FidInception::FidInception(const InceptionTensors& tensors, const std::string& source) {
  const std::map<std::string, at::Tensor> by_name = checked_tensors(tensors, source);
  stand_in_ = is_formula(by_name);
  auto get = [&](const std::string& name) { return by_name.at(name).detach().to(at::kDouble); };
  for (const ConvSpec& c : conv_specs()) {
    // Eval-mode batch norm: gamma * (y - mean) / sqrt(var + eps) + beta = y * scale + shift.
    const at::Tensor scale =
        get(c.name + ".bn.weight") / at::sqrt(get(c.name + ".bn.running_var") + kBatchNormEps);
    const at::Tensor shift = get(c.name + ".bn.bias") - get(c.name + ".bn.running_mean") * scale;
    Conv conv{
        (get(c.name + ".conv.weight") * scale.view({-1, 1, 1, 1})).to(at::kFloat).contiguous(),
        shift.to(at::kFloat).contiguous(),
        {c.stride, c.stride},
        {c.pad_h, c.pad_w}};
    convs_.emplace_back(c.name, std::move(conv));
  }
}

void FidInception::to(at::Device device) {
  for (auto& [name, c] : convs_) {
    c.weight = c.weight.to(device);
    c.bias = c.bias.to(device);
  }
}

at::Device FidInception::device() const { return convs_.front().second.weight.device(); }

const FidInception::Conv& FidInception::conv(const std::string& name) const {
  for (const auto& [key, value] : convs_) {
    if (key == name) return value;
  }
  throw std::logic_error("fid inception: internal: no layer " + name);
}

at::Tensor FidInception::basic(const std::string& name, const at::Tensor& x) const {
  const Conv& c = conv(name);
  // On the CPU, oneDNN directly: ATen sends 1x1 and small convolutions at batch < 16 on one
  // thread to the system BLAS (Debian's is the reference BLAS), 4.5x slower over the network here.
  const bool onednn = x.device().is_cpu() && x.scalar_type() == at::kFloat && at::hasMKLDNN() &&
                      at::globalContext().userEnabledMkldnn();
  if (onednn) {
    return at::relu(at::mkldnn_convolution(x.contiguous(), c.weight, c.bias, c.padding, c.stride,
                                           /*dilation=*/{1, 1}, /*groups=*/1));
  }
  return at::relu(at::conv2d(x, c.weight, c.bias, c.stride, c.padding));
}

namespace {
/// TensorFlow's 3x3 average pool: the zero padding is not counted (pytorch-fid's patch).
at::Tensor tf_avg_pool(const at::Tensor& x) {
  return at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false,
                        /*count_include_pad=*/false);
}
at::Tensor max_pool_s2(const at::Tensor& x) { return at::max_pool2d(x, {3, 3}, {2, 2}); }
}  // namespace

at::Tensor FidInception::block_a(const std::string& p, const at::Tensor& x) const {
  const at::Tensor b1 = basic(p + ".branch1x1", x);
  const at::Tensor b5 = basic(p + ".branch5x5_2", basic(p + ".branch5x5_1", x));
  const at::Tensor b3 =
      basic(p + ".branch3x3dbl_3", basic(p + ".branch3x3dbl_2", basic(p + ".branch3x3dbl_1", x)));
  const at::Tensor bp = basic(p + ".branch_pool", tf_avg_pool(x));
  return at::cat({b1, b5, b3, bp}, 1);
}

at::Tensor FidInception::block_b(const std::string& p, const at::Tensor& x) const {
  const at::Tensor b3 = basic(p + ".branch3x3", x);
  const at::Tensor bd =
      basic(p + ".branch3x3dbl_3", basic(p + ".branch3x3dbl_2", basic(p + ".branch3x3dbl_1", x)));
  return at::cat({b3, bd, max_pool_s2(x)}, 1);
}

at::Tensor FidInception::block_c(const std::string& p, const at::Tensor& x) const {
  const at::Tensor b1 = basic(p + ".branch1x1", x);
  at::Tensor b7 = x;
  for (const char* n : {".branch7x7_1", ".branch7x7_2", ".branch7x7_3"}) b7 = basic(p + n, b7);
  at::Tensor bd = x;
  for (int i = 1; i <= 5; ++i) bd = basic(p + ".branch7x7dbl_" + std::to_string(i), bd);
  const at::Tensor bp = basic(p + ".branch_pool", tf_avg_pool(x));
  return at::cat({b1, b7, bd, bp}, 1);
}

at::Tensor FidInception::block_d(const std::string& p, const at::Tensor& x) const {
  const at::Tensor b3 = basic(p + ".branch3x3_2", basic(p + ".branch3x3_1", x));
  at::Tensor b7 = x;
  for (int i = 1; i <= 4; ++i) b7 = basic(p + ".branch7x7x3_" + std::to_string(i), b7);
  return at::cat({b3, b7, max_pool_s2(x)}, 1);
}

/// FIDInceptionE_1 (`max_pool` false: TF's average pool) and FIDInceptionE_2 (`max_pool` true:
/// the TF graph's max pool, which pytorch-fid keeps).
at::Tensor FidInception::block_e(const std::string& p, const at::Tensor& x, bool max_pool) const {
  const at::Tensor b1 = basic(p + ".branch1x1", x);
  const at::Tensor s3 = basic(p + ".branch3x3_1", x);
  const at::Tensor b3 =
      at::cat({basic(p + ".branch3x3_2a", s3), basic(p + ".branch3x3_2b", s3)}, 1);
  const at::Tensor sd = basic(p + ".branch3x3dbl_2", basic(p + ".branch3x3dbl_1", x));
  const at::Tensor bd =
      at::cat({basic(p + ".branch3x3dbl_3a", sd), basic(p + ".branch3x3dbl_3b", sd)}, 1);
  const at::Tensor pooled = max_pool ? at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}) : tf_avg_pool(x);
  return at::cat({b1, b3, bd, basic(p + ".branch_pool", pooled)}, 1);
}

at::Tensor FidInception::features(const at::Tensor& images) const {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3) || images.size(2) < 1 ||
      images.size(3) < 1) {
    throw InputError("fid inception: images must be [B,C,H,W] with C = 1 or 3, got " +
                     shape_of(images.sizes()));
  }
  at::NoGradGuard no_grad;
  at::Tensor x = images.to(device(), at::kFloat);
  if (x.size(1) == 1) x = x.expand({x.size(0), 3, x.size(2), x.size(3)});
  x = (x + 1.0) * 0.5;  // the [0,1] images pytorch-fid reads
  x = at::upsample_bilinear2d(x.contiguous(), {299, 299}, /*align_corners=*/false);
  x = 2.0 * x - 1.0;  // normalize_input
  for (const char* n : {"Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"}) x = basic(n, x);
  x = max_pool_s2(x);
  x = max_pool_s2(basic("Conv2d_4a_3x3", basic("Conv2d_3b_1x1", x)));
  for (const char* n : {"Mixed_5b", "Mixed_5c", "Mixed_5d"}) x = block_a(n, x);
  x = block_b("Mixed_6a", x);
  for (const char* n : {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"}) x = block_c(n, x);
  x = block_d("Mixed_7a", x);
  x = block_e("Mixed_7c", block_e("Mixed_7b", x, /*max_pool=*/false), /*max_pool=*/true);
  return x.mean({2, 3});  // AdaptiveAvgPool2d(1): pool3
}

}  // namespace copaint
