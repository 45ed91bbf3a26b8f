// pytorch-fid's FID Inception-v3 (mseitzer/pytorch-fid, inception.py: torchvision's Inception3 with
// the FIDInceptionA/C/E_1/E_2 blocks ported from TensorFlow's inception-2015-12-05 graph), run
// functionally over named tensors up to the 2048-d pool3 features. The weights are not shipped:
// the user downloads pt_inception-2015-12-05-6726825d.pth (see fid_inception_weights_help()).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace copaint {

/// Named tensors as in a torch state_dict (framework/checkpoint's StateDict).
using InceptionTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// pytorch-fid's download address of the FID Inception weights.
extern const char* const kFidInceptionWeightsUrl;

/// Where to download the weights and how to point to them (one paragraph for error messages).
std::string fid_inception_weights_help();

/// Names and shapes of every tensor the pool3 features use (torchvision's Inception3 names:
/// `Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_var`, ...), in state_dict order.
std::vector<std::pair<std::string, std::vector<int64_t>>> fid_inception_shapes();

/// A deterministic value in [0, 1) for element `index` of the tensor `name`: splitmix64 of
/// FNV-1a-64(name) + (index + 1) * 0x9E3779B97F4A7C15, top 53 bits. The fixture generator
/// (tests/fixtures/fid/generate_fid_fixtures.py) computes the same values in numpy.
double formula_uniform(const std::string& name, int64_t index);
/// formula_uniform(name, 0 .. numel-1) as a float64 tensor of `shape`.
at::Tensor formula_uniform_tensor(const std::string& name, const std::vector<int64_t>& shape);
/// Every tensor of fid_inception_shapes() (plus fc.weight / fc.bias) filled by a formula of its
/// name and index (He-uniform convolutions, batch-norm statistics near 1): a network with O(1)
/// activations for tests and benchmarks, identical to the Python generator's, without a 95 MB file.
InceptionTensors fid_inception_formula_weights();

/// The FID Inception up to pool3. Inputs [B,C,H,W] in [-1,1] (C = 1 is repeated to 3, as
/// pytorch-fid's RGB conversion of grey images); features() maps them to [0,1], resizes to
/// 299x299 (bilinear, align_corners=False, as pytorch-fid's resize_input) and scales to [-1,1]
/// (normalize_input), then returns the [B,2048] float32 pool3 features on the weights' device.
class FidInception {
 public:
  /// Loads `weights_file` (torch.save zip or legacy, or safetensors) through
  /// copaint::load_state_dict. InputError naming the file (and where to get it) when it is missing,
  /// lacks a tensor, has a tensor of the wrong shape, or has tensors this network does not have.
  explicit FidInception(const std::string& weights_file);
  /// From tensors already loaded; `source` names them in error messages. Ignores
  /// `*.num_batches_tracked` and checks `fc.*` (1008 classes) when present.
  FidInception(const InceptionTensors& tensors, const std::string& source);

  at::Tensor features(const at::Tensor& images) const;
  /// Moves the weights (float32) to `device`.
  void to(at::Device device);
  at::Device device() const;
  /// Whether the weights are fid_inception_formula_weights() (a stand-in, not FID's network):
  /// the metrics then name their scores fid_standin / kid_standin.
  bool stand_in() const { return stand_in_; }

 private:
  /// A BasicConv2d (convolution without bias, batch norm with eps 1e-3, ReLU), the batch norm
  /// folded into the convolution's weight and a bias.
  struct Conv {
    at::Tensor weight, bias;
    std::vector<int64_t> stride, padding;
  };
  const Conv& conv(const std::string& name) const;
  at::Tensor basic(const std::string& name, const at::Tensor& x) const;
  at::Tensor block_a(const std::string& p, const at::Tensor& x) const;
  at::Tensor block_b(const std::string& p, const at::Tensor& x) const;
  at::Tensor block_c(const std::string& p, const at::Tensor& x) const;
  at::Tensor block_d(const std::string& p, const at::Tensor& x) const;
  at::Tensor block_e(const std::string& p, const at::Tensor& x, bool max_pool) const;

  std::vector<std::pair<std::string, Conv>> convs_;
  bool stand_in_ = false;
};

}  // namespace copaint
