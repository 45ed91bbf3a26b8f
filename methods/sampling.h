// Helpers every sampler shares: evaluating the model at respaced steps (counting evaluations),
// per-sample Gaussian noise from per-sample generators, and input checks.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/model.h"
#include "framework/schedule.h"
#include "methods/method.h"

namespace copaint {

/// eps for x at respaced steps t ([B] int64): the network runs at schedule.timestep_map[t] and
/// its first C output channels are returned (the rest are learned-variance channels).
/// Counts one forward in `counter`.
at::Tensor predict_eps(Denoiser& model, const DiffusionSchedule& schedule, const at::Tensor& x,
                       const at::Tensor& t, const at::Tensor& y, EvalCounter& counter);

/// Standard normal noise shaped like `like`, sample b drawn from generators[b] (so a sample's
/// noise does not depend on the rest of its batch). Created on CPU, moved to like's device.
at::Tensor per_sample_randn(const at::Tensor& like, const std::vector<at::Generator>& generators);

/// Checks an InpaintInput against the model (shapes, ranges, generator count); throws InputError
/// naming what is wrong. Returns the mask expanded to [B,1,H,W] float on the image's device.
at::Tensor check_input(const Denoiser& model, const InpaintInput& input);

/// Initial noise: input.x_T when given, else per_sample_randn.
at::Tensor initial_noise(const InpaintInput& input);

}  // namespace copaint
