// Blended (replacement DDIM) and Resample (replacement DDIM over particles with residual
// importance resampling), written from the papers' math and the reference's sampler settings.
#include "methods/replacement.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <map>

#include "framework/diffusion.h"
#include "framework/error.h"
#include "framework/schedule.h"
#include "methods/ddpm.h"
#include "methods/sampling.h"

namespace copaint {
namespace {

std::string num(double v) { return canonical_value(std::to_string(v)); }
std::string flag(bool v) { return v ? "true" : "false"; }

std::vector<int64_t> ddim_list(const BlendedParams& p, int64_t respaced_size,
                               const std::string& method) {
  const int64_t n = p.steps > 0 ? p.steps : respaced_size;
  if (n > respaced_size) {
    throw UsageError(method + ".steps (" + std::to_string(n) + ") exceeds the respaced process (" +
                     std::to_string(respaced_size) + " steps)");
  }
  return ddim_timesteps(n, respaced_size, p.schedule_type);
}

int64_t respaced_size(const std::string& respacing) {
  return DiffusionSchedule::linear(1000).respaced(respacing).size();
}

/// The forward-noised reference image at each visited step, one noise draw per step (the
/// reference's x_forward_sample "from_0", drawn lazily in the order the sampler visits steps).
class ForwardSamples {
 public:
  ForwardSamples(const DiffusionSchedule& schedule, const InpaintInput& input)
      : schedule_(schedule), input_(input) {}
  const at::Tensor& at_step(int64_t t) {
    auto it = cache_.find(t);
    if (it == cache_.end()) {
      const at::Tensor noise = draw_noise(input_, "forward", t, input_.image);
      it = cache_.emplace(t, q_sample(schedule_, input_.image, batch_steps(t, input_.image), noise))
               .first;
    }
    return it->second;
  }

 private:
  const DiffusionSchedule& schedule_;
  const InpaintInput& input_;
  std::map<int64_t, at::Tensor> cache_;
};

/// p = softmax(temperature / (mse / mean mse)) over one sample's particles (float32 like the
/// reference), as host doubles.
std::vector<double> mse_inverse_weights(const at::Tensor& mse, double temperature) {
  const at::Tensor normalised = mse / mse.mean();
  const at::Tensor p = at::softmax(at::reciprocal(normalised) * temperature, -1)
                           .to(at::kCPU, at::kDouble)
                           .contiguous();
  const double* d = p.data_ptr<double>();
  return std::vector<double>(d, d + p.numel());
}

}  // namespace

BlendedParams BlendedParams::from_options(const Options& o) {
  BlendedParams p;
  p.respacing = o.get("respacing");
  p.steps = o.get_int("steps");
  p.schedule_type = o.get("schedule_type");
  p.eta = o.get_double("eta");
  p.clip_denoised = o.get_bool("clip_denoised");
  if (p.steps < 0) throw UsageError("steps must be >= 0");
  if (p.eta < 0) throw UsageError("eta must be >= 0");
  if (p.schedule_type != "linear" && p.schedule_type != "quad") {
    throw UsageError("schedule_type must be linear or quad, got '" + p.schedule_type + "'");
  }
  return p;
}

std::vector<OptionSpec> blended_option_specs(const BlendedParams& d) {
  return {
      {"respacing", d.respacing,
       "respacing of the model's 1000-step process (guided-diffusion rule)"},
      {"steps", std::to_string(d.steps), "DDIM steps over the respaced process (0 = all)"},
      {"schedule_type", d.schedule_type, "DDIM step spacing: linear | quad"},
      {"eta", num(d.eta), "DDIM sigma scale (0 = deterministic DDIM)"},
      {"clip_denoised", flag(d.clip_denoised), "clamp x0 predictions to [-1, 1]"},
  };
}

int64_t Blended::expected_forwards() const {
  return static_cast<int64_t>(
             ddim_list(params_, respaced_size(params_.respacing), "blended").size()) -
         1;
}

InpaintOutput Blended::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const std::vector<int64_t> steps = ddim_list(params_, schedule.size(), "blended");
  ForwardSamples forward(schedule, input);
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors
  InpaintOutput out;
  at::Tensor x = initial_noise(input);
  const int64_t total = static_cast<int64_t>(steps.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t cur = steps[k], prev = steps[k + 1];
    x = forward.at_step(cur) * mask + at::rsub(mask, 1.0) * x;
    const at::Tensor t = batch_steps(cur, x), t_prev = batch_steps(prev, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
    at::Tensor x0 = x0_from_eps(schedule, x, t, eps);
    if (params_.clip_denoised) x0 = x0.clamp(-1, 1);
    const at::Tensor noise = params_.eta > 0 ? draw_noise(input, "ddim", cur, x) : at::Tensor();
    x = ddim_step(schedule, x0, eps, t, t_prev, params_.eta, noise);
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
  return out;
}

std::vector<int64_t> residual_resample(const std::vector<double>& weights, int64_t n,
                                       at::Generator& generator) {
  const size_t m = weights.size();
  if (m == 0 || n < 0) throw UsageError("residual_resample: need weights and n >= 0");
  std::vector<double> w = weights;
  double sum = 0;
  bool bad = false;
  for (double v : w) {
    bad = bad || !std::isfinite(v);
    sum += v;
  }
  if (bad || sum < 1e-6) {
    std::fill(w.begin(), w.end(), 1.0);
    sum = static_cast<double>(m);
  }
  std::vector<int64_t> indices;
  std::vector<double> residual(m);
  int64_t copies = 0, nonzero = 0;
  for (size_t i = 0; i < m; ++i) {
    const double scaled = static_cast<double>(n) * (w[i] / sum);
    const auto c = static_cast<int64_t>(scaled);
    residual[i] = scaled - static_cast<double>(c);
    nonzero += residual[i] > 0;
    for (int64_t j = 0; j < c; ++j) indices.push_back(static_cast<int64_t>(i));
    copies += c;
  }
  const int64_t rest = n - copies;
  if (rest > 0) {
    const at::Tensor r = at::tensor(residual, at::kDouble);
    const at::Tensor drawn =
        at::multinomial(r, rest, /*replacement=*/nonzero < rest, generator).contiguous();
    const int64_t* d = drawn.data_ptr<int64_t>();
    indices.insert(indices.end(), d, d + rest);
  }
  indices.resize(static_cast<size_t>(n));
  return indices;
}

ResampleParams ResampleParams::from_options(const Options& o) {
  ResampleParams p;
  p.ddim = BlendedParams::from_options(o);
  p.particles = o.get_int("particles");
  p.temperature = o.get_double("temperature");
  p.resample_pre_step = o.get_bool("resample_pre_step");
  if (p.particles < 1) throw UsageError("resample.particles must be >= 1");
  if (!(p.temperature > 0)) throw UsageError("resample.temperature must be > 0");
  return p;
}

std::vector<OptionSpec> resample_option_specs(const ResampleParams& d) {
  std::vector<OptionSpec> specs = blended_option_specs(d.ddim);
  specs.push_back({"particles", std::to_string(d.particles),
                   "particles per output sample (the reference: 10 per batch)"});
  specs.push_back(
      {"temperature", num(d.temperature), "weights softmax(temperature / (mse / mean mse))"});
  specs.push_back({"resample_pre_step", flag(d.resample_pre_step),
                   "reference behaviour: resample the pre-step states and drop the step"});
  return specs;
}

int64_t Resample::expected_forwards() const {
  const int64_t steps =
      static_cast<int64_t>(
          ddim_list(params_.ddim, respaced_size(params_.ddim.respacing), "resample").size()) -
      1;
  return steps * params_.particles;
}

InpaintOutput Resample::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  if (input.x_T.defined()) {
    throw InputError(
        "resample draws its own particles: x_T cannot be given (use the \"x_T\" noise override)");
  }
  if (static_cast<int64_t>(input.generators.size()) != input.image.size(0)) {
    throw InputError("resample needs one generator per sample for its resampling draws");
  }
  const BlendedParams& p = params_.ddim;
  const int64_t n = params_.particles, batch = input.image.size(0);
  const DiffusionSchedule schedule = method_schedule(model, p.respacing);
  const std::vector<int64_t> steps = ddim_list(p, schedule.size(), "resample");
  ForwardSamples forward(schedule, input);
  std::vector<at::Generator> generators = input.generators;
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors

  auto spread = [&](const at::Tensor& v) { return v.size(0) == 1 ? v : v.repeat_interleave(n, 0); };
  const at::Tensor mask_p = spread(mask);
  const at::Tensor y_p = input.y.defined() ? input.y.repeat_interleave(n, 0) : at::Tensor();
  const at::Tensor like = input.image.repeat_interleave(n, 0);
  auto particle_noise = [&](const std::string& purpose, int64_t t) {
    if (input.noise) {
      at::Tensor z = input.noise(purpose, t, like);
      if (!z.defined() || z.sizes() != like.sizes()) {
        throw InputError("noise override for '" + purpose + "' must be [B*particles,C,H,W]");
      }
      return z.to(like.device(), like.scalar_type());
    }
    return grouped_randn(like, generators);
  };
  // Squared distance of every particle's known region to `target` ([B,...]), as [B, n].
  auto known_mse = [&](const at::Tensor& target, const at::Tensor& particles) {
    const at::Tensor diff = spread(target) * mask_p - particles * mask_p;
    return at::pow(diff, 2).sum({1, 2, 3}).reshape({batch, n});
  };
  // Flat row indices of the resampled particles, `keep` per sample.
  auto resample = [&](const at::Tensor& mse, int64_t keep) {
    std::vector<int64_t> rows;
    for (int64_t b = 0; b < batch; ++b) {
      const auto picked = residual_resample(mse_inverse_weights(mse[b], params_.temperature), keep,
                                            generators[static_cast<size_t>(b)]);
      for (int64_t i : picked) rows.push_back(b * n + i);
    }
    return at::tensor(rows, at::kLong).to(mse.device());
  };

  InpaintOutput out;
  at::Tensor x = particle_noise("x_T", steps.front());
  const int64_t total = static_cast<int64_t>(steps.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t cur = steps[k], prev = steps[k + 1];
    x = spread(forward.at_step(cur)) * mask_p + at::rsub(mask_p, 1.0) * x;
    const at::Tensor t = batch_steps(cur, x), t_prev = batch_steps(prev, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, y_p, out.evals);
    out.evals.forwards += n - 1;  // one evaluation per particle
    at::Tensor x0 = x0_from_eps(schedule, x, t, eps);
    if (p.clip_denoised) x0 = x0.clamp(-1, 1);
    const at::Tensor noise = p.eta > 0 ? particle_noise("ddim", cur) : at::Tensor();
    const at::Tensor stepped = ddim_step(schedule, x0, eps, t, t_prev, p.eta, noise);
    const at::Tensor rows = resample(known_mse(forward.at_step(prev), stepped), n);
    x = (params_.resample_pre_step ? x : stepped).index_select(0, rows);
    if (input.on_step) input.on_step(k + 1, total);
  }
  const at::Tensor rows = resample(known_mse(input.image, x), 1);
  out.sample = x.index_select(0, rows).clamp(-1, 1);
  return out;
}

void register_replacement_methods(Registry<Method>& registry) {
  registry.add({"blended",
                "Blended (the reference's ddim): DDIM replacing the known region by the noised "
                "reference before each step",
                blended_option_specs(BlendedParams{}), [](const Options& o) {
                  return std::make_unique<Blended>(BlendedParams::from_options(o));
                }});
  registry.add({"resample",
                "Resampling (Trippe et al.): replacement DDIM over N particles per sample with "
                "importance resampling, one kept",
                resample_option_specs(ResampleParams{}), [](const Options& o) {
                  return std::make_unique<Resample>(ResampleParams::from_options(o));
                }});
}

}  // namespace copaint
