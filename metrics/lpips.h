// LPIPS v0.1 (Zhang et al. 2018, richzhang/PerceptualSimilarity) with an AlexNet, VGG16 or
// SqueezeNet 1.1 trunk, written functionally over named tensors. The weights are not shipped:
// the user points to the files the original projects publish (see lpips_weights_help()).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace copaint {

/// Named tensors as in a torch state_dict (same shape as framework/checkpoint/checkpoint.h's
/// StateDict).
using LpipsTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Where the LPIPS weights come from. Explicit files win over `weights_dir`.
struct LpipsOptions {
  std::string backbone = "alex";  ///< alex | vgg | squeeze
  std::string version = "0.1";    ///< only "0.1" (the paper's setting) is supported
  std::string weights_dir;        ///< folder with `<backbone>.pth` heads and the torchvision trunk
  std::string heads_file;         ///< explicit linear-heads file (e.g. lpips/weights/v0.1/alex.pth)
  std::string trunk_file;  ///< explicit torchvision trunk file (e.g. alexnet-owt-7be5be79.pth)
};

/// Text telling where to download the heads and trunk of `backbone` and where to put them.
std::string lpips_weights_help(const std::string& backbone);
/// Names and shapes of the trunk tensors LPIPS uses (torchvision's `features.N...` names).
std::vector<std::pair<std::string, std::vector<int64_t>>> lpips_trunk_shapes(
    const std::string& backbone);
/// Input channels of the heads lin0..linN (one per trunk tap).
std::vector<int64_t> lpips_head_channels(const std::string& backbone);
/// torchvision's file name of the trunk of `backbone` (e.g. "alexnet-owt-7be5be79.pth").
std::string lpips_trunk_file_name(const std::string& backbone);

/// The LPIPS distance. Inputs are [B,C,H,W] in [-1,1] (C = 1 is replicated to 3); `b` may be
/// [1,C,H,W] (broadcast). Returns [B] on `a`'s device; computes on the weights' device (see to()).
/// Inputs are not range-checked here (the Metric wrappers do that).
class Lpips {
 public:
  /// Loads the heads and trunk files named by `options` through copaint::load_state_dict.
  /// Throws UsageError for an unknown backbone/version or when no file is named at all, and
  /// InputError naming the file (and where to get it) when a file is missing or lacks a tensor.
  explicit Lpips(const LpipsOptions& options);
  /// From tensors already loaded: `heads` holds `linK.model.1.weight`, `trunk` holds torchvision's
  /// `features.N...` tensors (other entries, e.g. `classifier.*`, are ignored). `heads_source` and
  /// `trunk_source` name where they came from in error messages.
  Lpips(const std::string& backbone, const LpipsTensors& heads, const LpipsTensors& trunk,
        const std::string& heads_source = "heads", const std::string& trunk_source = "trunk");

  at::Tensor operator()(const at::Tensor& a, const at::Tensor& b) const;
  /// "lpips_<backbone>_v0.1".
  std::string name() const;
  const std::string& backbone() const { return backbone_; }
  /// Moves the weights (all float32) to `device`.
  void to(at::Device device);
  at::Device device() const;

 private:
  /// Trunk activations at the LPIPS taps for a scaled input.
  std::vector<at::Tensor> features(const at::Tensor& x) const;
  at::Tensor conv(const std::string& name, const at::Tensor& x, int64_t stride,
                  int64_t padding) const;
  at::Tensor fire(int64_t index, const at::Tensor& x) const;
  const at::Tensor& trunk(const std::string& name) const;

  std::string backbone_;
  std::vector<std::pair<std::string, at::Tensor>> trunk_;  ///< only the tensors used
  std::vector<at::Tensor> heads_;                          ///< [1,Ck,1,1] per tap
  at::Tensor shift_, scale_;                               ///< [1,3,1,1] input scaling
};

}  // namespace copaint
