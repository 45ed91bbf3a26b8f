// Shared sampler helpers: per-sample noise (or a recording's), step hooks, input checks.
#include "methods/sampling.h"

#include <ATen/ATen.h>

#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/core/transfer.h"
#include "framework/diffusion/diffusion.h"

namespace copaint {

at::Tensor per_sample_randn(const at::Tensor& like, const std::vector<at::Generator>& generators) {
  if (static_cast<int64_t>(generators.size()) != like.size(0)) {
    throw InputError("need one generator per sample: " + std::to_string(generators.size()) +
                     " for a batch of " + std::to_string(like.size(0)));
  }
  return grouped_randn(like, generators);  // groups of one row: the same draws
}

at::Tensor grouped_randn(const at::Tensor& like, const std::vector<at::Generator>& generators) {
  const int64_t groups = static_cast<int64_t>(generators.size());
  if (groups == 0 || like.size(0) % groups != 0) {
    throw InputError("need one generator per sample: " + std::to_string(groups) + " for " +
                     std::to_string(like.size(0)) + " rows");
  }
  auto shape = like.sizes().vec();
  shape[0] = like.size(0) / groups;
  std::vector<at::Tensor> parts;
  parts.reserve(generators.size());
  for (const auto& g : generators) {
    parts.push_back(at::randn(shape, g, at::TensorOptions().dtype(at::kFloat)));
  }
  // Drawn on the host (one CPU generator per sample, as the reference); the copy to the device
  // does not block the host.
  return upload(at::cat(parts, 0), like.device(), like.scalar_type());
}

at::Tensor draw_randn(const NoiseSource* source, const std::vector<at::Generator>& generators,
                      DrawRequest request) {
  request.kind = DrawRequest::Kind::kRandn;
  const at::Tensor& like = request.like;
  if (source != nullptr && *source) {
    const at::Tensor n = (*source)(request);
    if (n.defined()) {
      if (n.sizes() != like.sizes()) {
        throw InputError("noise override for '" + request.role +
                         "' at t=" + std::to_string(request.t) + " must be shaped like " +
                         std::to_string(like.numel()) + " elements of the sampler's tensor");
      }
      return upload(n, like.device(), like.scalar_type());
    }
  }
  return grouped_randn(like, generators);
}

at::Tensor draw_randn(const InpaintInput& input, DrawRequest request) {
  return draw_randn(&input.noise, input.generators, std::move(request));
}

at::Tensor draw_noise(const InpaintInput& input, const std::string& role, int64_t step, int64_t t,
                      const at::Tensor& like, bool legacy) {
  DrawRequest r;
  r.role = role;
  r.step = step;
  r.t = t;
  r.like = like;
  r.legacy = legacy;
  return draw_randn(input, std::move(r));
}

at::Tensor draw_multinomial(const NoiseSource* source, DrawRequest request,
                            at::Generator& generator) {
  request.kind = DrawRequest::Kind::kMultinomial;
  if (source != nullptr && *source) {
    const at::Tensor n = (*source)(request);
    if (n.defined()) {
      if (n.dim() != 1 || n.numel() != request.k) {
        throw InputError("multinomial override for '" + request.role + "' must hold " +
                         std::to_string(request.k) + " indices");
      }
      const at::Tensor idx = n.to(at::kCPU, at::kLong).contiguous();
      const int64_t m = request.weights.numel();
      if (idx.numel() > 0 && (idx.min().item<int64_t>() < 0 || idx.max().item<int64_t>() >= m)) {
        throw InputError("multinomial override for '" + request.role + "': index out of range");
      }
      return idx;
    }
  }
  return at::multinomial(request.weights, request.k, request.replacement, generator).contiguous();
}

at::Tensor hooked_x_in(const InpaintInput& input, int64_t call, const at::Tensor& x) {
  if (input.hooks == nullptr || !input.hooks->replace_x_in) return x;
  const at::Tensor r = input.hooks->replace_x_in(call, x);
  if (!r.defined()) return x;
  if (r.sizes() != x.sizes()) throw InputError("replace_x_in must keep the state's shape");
  return r.to(x.device(), x.scalar_type());
}

StepRecord step_record(int64_t call, int64_t step, int64_t t, int64_t prev_t, at::Tensor x_in,
                       at::Tensor eps, at::Tensor pred_x0, at::Tensor x_out) {
  StepRecord r;
  r.call = call;
  r.step = step;
  r.t = t;
  r.prev_t = prev_t;
  r.x_in = std::move(x_in);
  r.eps = std::move(eps);
  r.pred_x0 = std::move(pred_x0);
  r.x_out = std::move(x_out);
  return r;
}

void hooked_record(const InpaintInput& input, const StepRecord& record) {
  if (input.hooks != nullptr && input.hooks->on_record) input.hooks->on_record(record);
}

at::Tensor check_input(const Denoiser& model, const InpaintInput& input) {
  const auto& img = input.image;
  if (!img.defined() || img.dim() != 4) {
    throw InputError("image batch must be [B,C,H,W]");
  }
  if (img.size(1) != model.channels()) {
    throw InputError("image has " + std::to_string(img.size(1)) + " channels, the model takes " +
                     std::to_string(model.channels()));
  }
  if (img.size(2) != model.image_size() || img.size(3) != model.image_size()) {
    throw InputError("image is " + std::to_string(img.size(2)) + "x" + std::to_string(img.size(3)) +
                     ", the model takes " + std::to_string(model.image_size()) + "x" +
                     std::to_string(model.image_size()));
  }
  const auto& m = input.mask;
  if (!m.defined() || m.dim() != 4 || (m.size(0) != img.size(0) && m.size(0) != 1) ||
      (m.size(1) != 1 && m.size(1) != img.size(1)) || m.size(2) != img.size(2) ||
      m.size(3) != img.size(3)) {
    throw InputError("mask must be [B or 1, 1 or C, H, W] matching the image " +
                     std::to_string(img.size(2)) + "x" + std::to_string(img.size(3)));
  }
  if (model.num_classes() > 0 && !input.y.defined()) {
    throw InputError("the model is class-conditional: class labels are required");
  }
  if (input.x_T.defined() && input.x_T.sizes() != img.sizes()) {
    throw InputError("x_T must have the image batch's shape");
  }
  if (!input.x_T.defined() && static_cast<int64_t>(input.generators.size()) != img.size(0)) {
    throw InputError("need one generator per sample: " + std::to_string(input.generators.size()) +
                     " for a batch of " + std::to_string(img.size(0)));
  }
  return m.to(img.device(), at::kFloat);
}

at::Tensor initial_noise(const InpaintInput& input) {
  if (input.x_T.defined()) return input.x_T.to(input.image.device(), input.image.scalar_type());
  return draw_noise(input, "x_T", -1, -1, input.image, /*legacy=*/false);
}

void check_jump_length(const std::string& name, const Options& o, const std::string& length_key) {
  if (o.get_int("jump_n_sample") <= 1) return;
  int64_t n = o.get_int(length_key);
  if (n <= 0) {
    try {
      n = DiffusionSchedule::linear(1000).respaced(o.get("respacing")).size();
    } catch (const std::exception&) {
      return;  // a bad respacing is reported when the method is built
    }
  }
  check_below(name, "jump_length", o.get_int("jump_length"), n,
              "the schedule's " + std::to_string(n) + " steps: " + name + "." + length_key +
                  ", or the size of " + name + ".respacing");
}

at::Tensor walk_jump_schedule(const InpaintInput& input, const DiffusionSchedule& schedule,
                              const std::vector<int64_t>& list, at::Tensor x,
                              const JumpStep& step) {
  int64_t call = 0;
  const int64_t total = static_cast<int64_t>(list.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t t_last = list[k], t_cur = list[k + 1];
    if (t_cur < t_last) {
      x = step(k, call, t_last, t_cur, hooked_x_in(input, call, x));
      ++call;
    } else {
      const at::Tensor t_next = batch_steps(t_cur, x);
      x = undo_step(schedule, x, t_next, draw_noise(input, "undo", k, t_cur, x));
    }
    if (input.on_step) input.on_step(k + 1, total);
  }
  return x.clamp(-1, 1);
}

}  // namespace copaint
