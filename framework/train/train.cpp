// DDPM eps-prediction training: our own Adam and EMA over the UNet's parameter tensors.
#include "framework/train/train.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "framework/core/atomic_file.h"
#include "framework/core/error.h"

namespace copaint {

DiffusionTrainer::DiffusionTrainer(UNet& unet, TrainParams params, DiffusionSchedule schedule)
    : unet_(unet), params_(params), schedule_(std::move(schedule)) {
  const auto ab = at::tensor(schedule_.alphas_cumprod, at::kDouble);
  sqrt_ab_ = ab.sqrt().to(at::kFloat);
  sqrt_1m_ab_ = (1 - ab).sqrt().to(at::kFloat);
  unet_.requires_grad_(true);
  for (const auto& p : unet_.parameters()) {
    m_.push_back(at::zeros_like(p));
    v_.push_back(at::zeros_like(p));
    ema_.push_back(p.detach().clone());
  }
}

double DiffusionTrainer::step(const at::Tensor& x0, at::Generator& gen) {
  const int64_t b = x0.size(0);
  const auto device = unet_.device();
  const at::Tensor x = x0.to(device);
  const at::Tensor t =
      at::randint(schedule_.size(), {b}, gen, at::TensorOptions().dtype(at::kLong));
  const at::Tensor noise =
      at::randn(x.sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(device);
  const at::Tensor td = t.to(device);
  const at::Tensor x_t = sqrt_ab_.to(device).index({td}).view({b, 1, 1, 1}) * x +
                         sqrt_1m_ab_.to(device).index({td}).view({b, 1, 1, 1}) * noise;
  at::AutoGradMode grad(true);
  const at::Tensor out =
      unet_.forward(x_t, at::tensor(schedule_.timestep_map, at::kLong).index({t}).to(device));
  const at::Tensor eps = out.narrow(1, 0, x.size(1));
  const at::Tensor loss = (eps - noise).pow(2).mean();
  const auto params = unet_.parameters();
  const auto grads = torch::autograd::grad({loss}, params);

  at::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1 - std::pow(params_.beta1, static_cast<double>(step_));
  const double bc2 = 1 - std::pow(params_.beta2, static_cast<double>(step_));
  const double ema = std::min(params_.ema_decay,
                              step_ < params_.ema_warmup ? (1.0 + step_) / (10.0 + step_) : 1.0);
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    const at::Tensor& g = grads[i];
    m_[i].mul_(params_.beta1).add_(g, 1 - params_.beta1);
    v_[i].mul_(params_.beta2).addcmul_(g, g, 1 - params_.beta2);
    if (params_.weight_decay > 0) p.mul_(1 - params_.lr * params_.weight_decay);
    const at::Tensor denom = (v_[i] / bc2).sqrt_().add_(1e-8);
    p.addcdiv_(m_[i], denom, -params_.lr / bc1);
    ema_[i].mul_(ema).add_(p, 1 - ema);
  }
  return loss.item<double>();
}

double DiffusionTrainer::eval_loss(const at::Tensor& x0, int64_t t, at::Generator& gen,
                                   bool use_ema) {
  at::NoGradGuard no_grad;
  const auto device = unet_.device();
  const int64_t b = x0.size(0);
  const at::Tensor x = x0.to(device);
  const at::Tensor noise =
      at::randn(x.sizes(), gen, at::TensorOptions().dtype(at::kFloat)).to(device);
  const at::Tensor x_t = sqrt_ab_[t].item<float>() * x + sqrt_1m_ab_[t].item<float>() * noise;
  // Swap the EMA weights in for the evaluation; the guard swaps the live ones back even if the
  // forward throws.
  struct Swap {
    std::vector<at::Tensor> params, saved;
    ~Swap() {
      for (size_t i = 0; i < saved.size(); ++i) params[i].copy_(saved[i]);
    }
  } swap{unet_.parameters(), {}};
  if (use_ema) {
    for (size_t i = 0; i < swap.params.size(); ++i) {
      swap.saved.push_back(swap.params[i].detach().clone());
      swap.params[i].copy_(ema_[i]);
    }
  }
  const at::Tensor tt =
      at::full({b}, schedule_.timestep_map[static_cast<size_t>(t)], at::kLong).to(device);
  const at::Tensor eps = unet_.forward(x_t, tt).narrow(1, 0, x.size(1));
  return (eps - noise).pow(2).mean().item<double>();
}

StateDict DiffusionTrainer::ema_state() const {
  StateDict out;
  const auto named = unet_.named_parameters();
  for (size_t i = 0; i < named.size(); ++i)
    out.emplace_back(named[i].first, ema_[i].detach().cpu());
  return out;
}

void DiffusionTrainer::save_state(const std::string& path) const {
  StateDict state;
  const auto named = unet_.named_parameters();
  for (size_t i = 0; i < named.size(); ++i) {
    state.emplace_back("model." + named[i].first, named[i].second.detach().cpu());
    state.emplace_back("ema." + named[i].first, ema_[i].cpu());
    state.emplace_back("adam_m." + named[i].first, m_[i].cpu());
    state.emplace_back("adam_v." + named[i].first, v_[i].cpu());
  }
  state.emplace_back("step", at::tensor({step_}, at::kLong));
  // Written beside, synced and renamed: a kill or a full disk keeps the previous state.
  const std::string tmp = temp_path_for(path);
  try {
    write_safetensors(tmp, state);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  commit_temp_file(tmp, path);
}

void DiffusionTrainer::load_state(const std::string& path) {
  const StateDict state = read_safetensors(path);
  std::unordered_map<std::string, at::Tensor> by_name(state.begin(), state.end());
  auto take = [&](const std::string& key, const at::Tensor& like) {
    auto it = by_name.find(key);
    if (it == by_name.end() || it->second.sizes() != like.sizes()) {
      throw InputError(path + ": training state does not match the model (tensor '" + key + "')");
    }
    return it->second.to(like.device(), like.scalar_type());
  };
  at::NoGradGuard no_grad;
  const auto named = unet_.named_parameters();
  for (size_t i = 0; i < named.size(); ++i) {
    const at::Tensor& p = named[i].second;
    p.detach().copy_(take("model." + named[i].first, p));
    ema_[i].copy_(take("ema." + named[i].first, p));
    m_[i].copy_(take("adam_m." + named[i].first, p));
    v_[i].copy_(take("adam_v." + named[i].first, p));
  }
  auto it = by_name.find("step");
  if (it == by_name.end()) throw InputError(path + ": training state has no 'step'");
  step_ = it->second.item<int64_t>();
}

void save_torch_state_dict(const std::string& path, const StateDict& state) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : state) dict.insert(name, t.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
  write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace copaint
