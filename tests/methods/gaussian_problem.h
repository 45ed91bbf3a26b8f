// Test helpers for the baselines: a tiny inpainting problem on the analytic Gaussian-data model,
// per-sample generators, a denoiser that records what the method evaluates, and a noise override
// that records the draws it hands out.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "datasets/masks.h"
#include "framework/nn/denoisers.h"
#include "methods/method.h"

namespace copaint {
namespace testing_baselines {

/// Data N(mean, 0.5^2) per pixel on 1x8x8 images; the reference image is one draw of it.
struct GaussianProblem {
  static constexpr int64_t kSize = 8;
  static constexpr double kStd = 0.5;
  at::Tensor mean;   ///< [1,8,8]
  at::Tensor image;  ///< [1,1,8,8], within [-0.95, 0.95]
  at::Tensor mask;   ///< [1,1,8,8] half mask (left half known)
  std::unique_ptr<GaussianDenoiser> model;

  GaussianProblem() {
    const at::Tensor grid = at::arange(kSize * kSize, at::kFloat).reshape({1, kSize, kSize});
    mean = at::sin(grid * 0.37) * 0.4;
    auto g = at::make_generator<at::CPUGeneratorImpl>(123);
    image = (mean + at::randn({1, kSize, kSize}, g) * kStd).clamp(-0.95, 0.95).unsqueeze(0);
    mask = half_mask(kSize, kSize).unsqueeze(0).to(at::kFloat);
    model = std::make_unique<GaussianDenoiser>(mean, kStd);
  }

  /// A batch of the same problem with one generator per seed.
  InpaintInput input(const std::vector<uint64_t>& seeds) const {
    InpaintInput in;
    const int64_t b = static_cast<int64_t>(seeds.size());
    in.image = image.expand({b, -1, -1, -1}).contiguous();
    in.mask = mask;
    for (uint64_t s : seeds) in.generators.push_back(at::make_generator<at::CPUGeneratorImpl>(s));
    return in;
  }
};

/// Forwards to another denoiser and records every input and timestep it is evaluated at.
class RecordingDenoiser : public Denoiser {
 public:
  explicit RecordingDenoiser(Denoiser& inner) : inner_(inner) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override {
    inputs.push_back(x.detach().clone());
    steps.push_back(t.reshape({-1})[0].item<int64_t>());
    return inner_.forward(x, t, y);
  }
  int64_t image_size() const override { return inner_.image_size(); }
  int64_t channels() const override { return inner_.channels(); }
  bool learn_sigma() const override { return inner_.learn_sigma(); }
  int64_t num_train_timesteps() const override { return inner_.num_train_timesteps(); }
  void to(const c10::Device& device) override { inner_.to(device); }
  std::string describe() const override { return "recording " + inner_.describe(); }

  std::vector<at::Tensor> inputs;  ///< x per forward
  std::vector<int64_t> steps;      ///< original timestep of sample 0 per forward

 private:
  Denoiser& inner_;
};

/// A denoiser with learned-variance channels: the inner eps and a constant variance value v.
class TwoChannelDenoiser : public Denoiser {
 public:
  TwoChannelDenoiser(Denoiser& inner, double v) : inner_(inner), v_(v) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) override {
    const at::Tensor eps = inner_.forward(x, t, y);
    return at::cat({eps, at::full_like(eps, v_)}, 1);
  }
  int64_t image_size() const override { return inner_.image_size(); }
  int64_t channels() const override { return inner_.channels(); }
  bool learn_sigma() const override { return true; }
  int64_t num_train_timesteps() const override { return inner_.num_train_timesteps(); }
  void to(const c10::Device& device) override { inner_.to(device); }
  std::string describe() const override { return "two-channel " + inner_.describe(); }

 private:
  Denoiser& inner_;
  double v_;
};

/// A noise override drawing from one generator and recording each draw by (purpose, t).
struct NoiseRecorder {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(99);
  std::map<std::string, double> scale;  ///< purpose -> factor (0 = zero noise); default 1
  std::vector<std::string> purposes;
  std::vector<int64_t> steps;
  std::vector<at::Tensor> draws;

  void attach(InpaintInput& in) {
    in.noise = [this](const std::string& purpose, int64_t t, const at::Tensor& like) {
      at::Tensor z = at::randn(like.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
      auto it = scale.find(purpose);
      if (it != scale.end()) z = z * it->second;
      purposes.push_back(purpose);
      steps.push_back(t);
      draws.push_back(z);
      return z;
    };
  }
  /// The draw for (purpose, t); fails the test when absent.
  at::Tensor get(const std::string& purpose, int64_t t) const {
    for (size_t i = 0; i < draws.size(); ++i) {
      if (purposes[i] == purpose && steps[i] == t) return draws[i];
    }
    ADD_FAILURE() << "no '" << purpose << "' noise drawn at t=" << t;
    return at::Tensor();
  }
  /// The first draw for `purpose`, whatever its step.
  at::Tensor first(const std::string& purpose) const {
    for (size_t i = 0; i < draws.size(); ++i) {
      if (purposes[i] == purpose) return draws[i];
    }
    ADD_FAILURE() << "no '" << purpose << "' noise drawn";
    return at::Tensor();
  }
  int64_t count(const std::string& purpose) const {
    return std::count(purposes.begin(), purposes.end(), purpose);
  }
};

inline double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

/// Mean |a - b| over the pixels where mask is 1 (mask [1 or B,1,H,W]).
inline double masked_mae(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor m = mask.expand_as(a).to(at::kDouble);
  return ((a.to(at::kDouble) - b.to(at::kDouble)).abs() * m).sum().item<double>() /
         m.sum().item<double>();
}

}  // namespace testing_baselines
}  // namespace copaint
