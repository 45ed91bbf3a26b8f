// Training an ADM UNet as a standard DDPM eps-predictor: Adam, EMA weights, resumable state.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/checkpoint/checkpoint.h"
#include "framework/diffusion/schedule.h"
#include "framework/nn/unet.h"

namespace copaint {

/// Settings of `copaint train`.
struct TrainParams {
  int64_t steps = 10000;      ///< total optimiser steps
  int64_t batch_size = 32;    ///< images per step
  double lr = 2e-4;           ///< Adam learning rate
  double beta1 = 0.9;         ///< Adam beta1
  double beta2 = 0.999;       ///< Adam beta2
  double weight_decay = 0.0;  ///< AdamW-style decoupled weight decay
  double ema_decay = 0.9999;  ///< EMA of the weights (the exported model)
  int64_t ema_warmup = 1000;  ///< EMA decay is min(ema_decay, (1+step)/(10+step)) (warm-up)
  uint64_t seed = 0;          ///< data order, timesteps and noise
};

/// Trains `unet` (its parameters are updated in place) with the MSE between the true noise and
/// the predicted eps (first C output channels; with learn_sigma the variance channels get no
/// loss: the hybrid loss is not implemented, so train with learn_sigma=false).
class DiffusionTrainer {
 public:
  DiffusionTrainer(UNet& unet, TrainParams params, DiffusionSchedule schedule);

  /// One Adam step on a batch x0 [B,C,H,W] in [-1,1]; timesteps and noise come from `gen`.
  /// Returns the batch loss.
  double step(const at::Tensor& x0, at::Generator& gen);

  /// Mean eps-MSE per sample at timestep t (no update), for evaluation by timestep.
  double eval_loss(const at::Tensor& x0, int64_t t, at::Generator& gen, bool use_ema);

  int64_t steps_done() const { return step_; }
  /// The EMA weights under the UNet's state_dict names.
  StateDict ema_state() const;
  /// Saves everything needed to resume (weights, EMA, Adam moments, step) as safetensors.
  void save_state(const std::string& path) const;
  /// Restores a save_state file; InputError when it does not match this UNet.
  void load_state(const std::string& path);

 private:
  UNet& unet_;
  TrainParams params_;
  DiffusionSchedule schedule_;
  at::Tensor sqrt_ab_, sqrt_1m_ab_;  ///< float32 [T]
  std::vector<at::Tensor> m_, v_, ema_;
  int64_t step_ = 0;
};

/// Writes a state_dict as a PyTorch zip-format file that `torch.load` reads (a dict of tensors)
/// and so does load_state_dict().
void save_torch_state_dict(const std::string& path, const StateDict& state);

}  // namespace copaint
