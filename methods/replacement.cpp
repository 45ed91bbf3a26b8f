// Blended (replacement DDIM) and Resample (replacement DDIM over particles with residual
// importance resampling), written from the papers' math and the reference's sampler settings.
#include "methods/replacement.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "framework/core/error.h"
#include "framework/core/transfer.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/diffusion.h"
#include "framework/diffusion/schedule.h"
#include "methods/sampling.h"

namespace copaint {
namespace {

std::vector<int64_t> ddim_list(const BlendedParams& p, int64_t respaced_size,
                               const std::string& method) {
  const int64_t n = p.steps > 0 ? p.steps : respaced_size;
  if (n > respaced_size) {
    throw UsageError(method + ".steps (" + std::to_string(n) + ") exceeds the respaced process (" +
                     std::to_string(respaced_size) + " steps)");
  }
  return ddim_timesteps(n, respaced_size, schedule_type_name(p.schedule_type));
}

int64_t respaced_size(int64_t train_steps, const std::string& respacing) {
  return DiffusionSchedule::linear(train_steps).respaced(respacing).size();
}

/// The forward-noised reference image at each visited step, one noise draw per step (the
/// reference's x_forward_sample "from_0", drawn lazily in the order the sampler visits steps):
/// draw "forward" at (step, t), [B,...] from each sample's generator, or with `shared` one [1,...]
/// draw from generators[0] for the whole batch (the reference's sharing).
class ForwardSamples {
 public:
  ForwardSamples(const DiffusionSchedule& schedule, const InpaintInput& input, bool shared)
      : schedule_(schedule), input_(input), shared_(shared) {}
  const at::Tensor& at_step(int64_t t, int64_t step) {
    auto it = cache_.find(t);
    if (it == cache_.end()) {
      const at::Tensor& image = input_.image;
      at::Tensor noise;
      if (shared_ && image.size(0) > 1) {
        DrawRequest r;
        r.role = "forward";
        r.step = step;
        r.t = t;
        r.like = image.narrow(0, 0, 1);
        r.legacy = false;
        const std::vector<at::Generator> first(
            input_.generators.begin(),
            input_.generators.begin() + std::min<size_t>(1, input_.generators.size()));
        noise = draw_randn(&input_.noise, first, std::move(r)).expand_as(image);
      } else {
        noise = draw_noise(input_, "forward", step, t, image);
      }
      it = cache_.emplace(t, q_sample(schedule_, image, batch_steps(t, image), noise)).first;
    }
    return it->second;
  }

 private:
  const DiffusionSchedule& schedule_;
  const InpaintInput& input_;
  bool shared_;
  std::map<int64_t, at::Tensor> cache_;
};

/// p = softmax(temperature / (mse / mean mse)) over each sample's particles (mse [B, n]; float32
/// like the reference, row by row), read to the host in one transfer as B rows of doubles.
std::vector<std::vector<double>> mse_inverse_weights(const at::Tensor& mse, double temperature) {
  std::vector<at::Tensor> rows;
  for (int64_t b = 0; b < mse.size(0); ++b) {
    const at::Tensor normalised = mse[b] / mse[b].mean();
    rows.push_back(at::softmax(at::reciprocal(normalised) * temperature, -1));
  }
  const at::Tensor p = to_host(at::stack(rows, 0).to(at::kDouble));
  const double* d = p.data_ptr<double>();
  std::vector<std::vector<double>> out;
  for (int64_t b = 0; b < p.size(0); ++b)
    out.emplace_back(d + b * p.size(1), d + (b + 1) * p.size(1));
  return out;
}

}  // namespace

const std::vector<ParamField<BlendedParams>>& blended_fields() {
  using P = BlendedParams;
  static const std::vector<ParamField<P>> fields = {
      respacing_field<P>(),
      field("steps", &P::steps, "DDIM steps over the respaced process (0 = all)").at_least(0),
      schedule_type_field<P>(),
      field("eta", &P::eta, "DDIM sigma scale (0 = deterministic DDIM)").at_least(0),
      clip_denoised_field<P>(),
      field(
          "share_forward_noise", &P::share_forward_noise,
          "reference behaviour: one forward-noise draw for the whole batch (sample 0's generator)")
          .unkeyed(),
  };
  return fields;
}

BlendedParams BlendedParams::from_options(const Options& o) {
  return parse_params(blended_fields(), o);
}

std::vector<OptionSpec> blended_option_specs(const BlendedParams& d) {
  return option_specs(blended_fields(), d);
}

int64_t Blended::expected_forwards(int64_t train_steps) const {
  return static_cast<int64_t>(
             ddim_list(params_, respaced_size(train_steps, params_.respacing), "blended").size()) -
         1;
}

InpaintOutput Blended::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  const DiffusionSchedule schedule = method_schedule(model, params_.respacing);
  const std::vector<int64_t> steps = ddim_list(params_, schedule.size(), "blended");
  ForwardSamples forward(schedule, input, params_.share_forward_noise);
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors
  InpaintOutput out;
  at::Tensor x = initial_noise(input);
  const int64_t total = static_cast<int64_t>(steps.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t cur = steps[k], prev = steps[k + 1];
    x = forward.at_step(cur, k) * mask + at::rsub(mask, 1.0) * x;
    x = hooked_x_in(input, k, x);
    const at::Tensor t = batch_steps(cur, x), t_prev = batch_steps(prev, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, input.y, out.evals);
    at::Tensor x0 = x0_from_eps(schedule, x, t, eps);
    if (params_.clip_denoised) x0 = x0.clamp(-1, 1);
    const at::Tensor noise = params_.eta > 0 ? draw_noise(input, "ddim", k, cur, x) : at::Tensor();
    const at::Tensor x_in = x;
    x = ddim_step(schedule, x0, eps, t, t_prev, params_.eta, noise);
    if (input.hooks) hooked_record(input, step_record(k, k, cur, prev, x_in, eps, x0, x));
    if (input.on_step) input.on_step(k + 1, total);
  }
  out.sample = x.clamp(-1, 1);
  return out;
}

std::vector<int64_t> residual_resample(const std::vector<double>& weights, int64_t n,
                                       at::Generator& generator, const NoiseSource* source,
                                       DrawRequest request) {
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
    request.weights = at::tensor(residual, at::kDouble);
    request.k = rest;
    request.replacement = nonzero < rest;
    const at::Tensor drawn = draw_multinomial(source, std::move(request), generator);
    const int64_t* d = drawn.data_ptr<int64_t>();
    indices.insert(indices.end(), d, d + rest);
  }
  indices.resize(static_cast<size_t>(n));
  return indices;
}

const std::vector<ParamField<ResampleParams>>& resample_fields() {
  using P = ResampleParams;
  static const std::vector<ParamField<P>> fields = [] {
    // Blended's options, read into (and defaulted from) the `ddim` member.
    std::vector<ParamField<P>> out;
    for (const ParamField<BlendedParams>& f : blended_fields()) {
      out.push_back({f.spec, [f](const P& p) { return f.text(p.ddim); },
                     [f](P& p, const Options& o) { f.assign(p.ddim, o); }});
    }
    return out + std::vector<ParamField<P>>{
                     field("particles", &P::particles,
                           "particles per output sample (the reference: 10 per batch)")
                         .at_least(1)
                         .confirm_above(1000),  // a sane bound; beyond it only with --allow-large
                     field("temperature", &P::temperature,
                           "weights softmax(temperature / (mse / mean mse))")
                         .above(0),
                     field("resample_pre_step", &P::resample_pre_step,
                           "reference behaviour: resample the pre-step states and drop the step"),
                     field("reference_last_weights", &P::reference_last_weights,
                           "reference behaviour: at the last step weigh each particle against all "
                           "particles' own noised images at t=0")
                         .unkeyed(),
                 };
  }();
  return fields;
}

ResampleParams ResampleParams::from_options(const Options& o) {
  return parse_params(resample_fields(), o);
}

std::vector<OptionSpec> resample_option_specs(const ResampleParams& d) {
  return option_specs(resample_fields(), d);
}

int64_t Resample::expected_forwards(int64_t train_steps) const {
  const int64_t steps =
      static_cast<int64_t>(
          ddim_list(params_.ddim, respaced_size(train_steps, params_.ddim.respacing), "resample")
              .size()) -
      1;
  return steps * params_.particles;
}

namespace {

/// Throws InputError unless `input` suits resample: no x_T (it draws its own particles) and one
/// generator per sample (for its resampling draws).
void check_resample_input(const InpaintInput& input) {
  if (input.x_T.defined()) {
    throw InputError(
        "resample draws its own particles: x_T cannot be given (use the \"x_T\" noise override)");
  }
  if (static_cast<int64_t>(input.generators.size()) != input.image.size(0)) {
    throw InputError("resample needs one generator per sample for its resampling draws");
  }
}

/// The particles of a resample run, `particles` per sample stacked sample-major ([B*n,...]):
/// their distances to the known region and the resampling draws that pick among them.
class ParticleFilter {
 public:
  /// Particles for `input` (its known region `mask`) over the respaced `schedule`.
  ParticleFilter(const ResampleParams& params, const DiffusionSchedule& schedule,
                 const InpaintInput& input, const at::Tensor& mask)
      : params_(params),
        schedule_(schedule),
        input_(input),
        n_(params.particles),
        batch_(input.image.size(0)),
        generators_(input.generators),
        mask_p_(spread(mask)),
        y_p_(input.y.defined() ? input.y.repeat_interleave(n_, 0) : at::Tensor()),
        like_(input.image.repeat_interleave(n_, 0)) {}

  /// `v` ([B,...]) repeated for every particle, or as is when it has one row.
  at::Tensor spread(const at::Tensor& v) const {
    return v.size(0) == 1 ? v : v.repeat_interleave(n_, 0);
  }
  /// The known-region mask per particle.
  const at::Tensor& mask() const { return mask_p_; }
  /// The class labels per particle (undefined without labels).
  const at::Tensor& labels() const { return y_p_; }
  /// The reference images per particle (the shape of the particles).
  const at::Tensor& like() const { return like_; }

  /// Squared distance of every particle's known region to `target` ([B,...]), as [B, n].
  at::Tensor known_mse(const at::Tensor& target, const at::Tensor& particles) const {
    const at::Tensor diff = spread(target) * mask_p_ - particles * mask_p_;
    return at::pow(diff, 2).sum({1, 2, 3}).reshape({batch_, n_});
  }

  /// The reference's last-step weights: its x_forward[0] holds one noised image per particle, and
  /// its distance broadcasts each particle against all of them ([B, n]).
  at::Tensor all_pairs_mse(int64_t step, const at::Tensor& particles) const {
    const at::Tensor noise = draw_noise(input_, "forward", step, 0, like_, /*legacy=*/false);
    const at::Tensor target = q_sample(schedule_, like_, batch_steps(0, like_), noise) * mask_p_;
    const auto shape = particles.sizes().vec();
    std::vector<int64_t> a{batch_, 1, n_}, b{batch_, n_, 1};
    a.insert(a.end(), shape.begin() + 1, shape.end());
    b.insert(b.end(), shape.begin() + 1, shape.end());
    const at::Tensor diff = target.reshape(a) - (particles * mask_p_).reshape(b);
    return at::pow(diff, 2).sum({2, 3, 4, 5});
  }

  /// Flat row indices of the resampled particles, `keep` per sample, drawn as (role, step, t)
  /// from each sample's generator; `weights` (if not null) gets p ([B, n]).
  at::Tensor resample(const at::Tensor& mse, int64_t keep, const std::string& role, int64_t step,
                      int64_t t, at::Tensor* weights) {
    std::vector<int64_t> rows;
    std::vector<at::Tensor> all;
    const std::vector<std::vector<double>> all_w = mse_inverse_weights(mse, params_.temperature);
    for (int64_t b = 0; b < batch_; ++b) {
      const std::vector<double>& w = all_w[static_cast<size_t>(b)];
      if (weights) all.push_back(at::tensor(w, at::kDouble));
      DrawRequest request;
      request.role = role;
      request.step = step;
      request.t = t;
      request.sample = b;
      const auto picked = residual_resample(w, keep, generators_[static_cast<size_t>(b)],
                                            &input_.noise, std::move(request));
      for (int64_t i : picked) rows.push_back(b * n_ + i);
    }
    if (weights) *weights = at::stack(all, 0);
    return upload(at::tensor(rows, at::kLong), mse.device(), at::kLong);
  }

 private:
  const ResampleParams& params_;
  const DiffusionSchedule& schedule_;
  const InpaintInput& input_;
  const int64_t n_, batch_;
  std::vector<at::Generator> generators_;
  const at::Tensor mask_p_;
  const at::Tensor y_p_;
  const at::Tensor like_;
};

}  // namespace

InpaintOutput Resample::run(Denoiser& model, const InpaintInput& input) {
  const at::Tensor mask = check_input(model, input);
  check_resample_input(input);
  const BlendedParams& p = params_.ddim;
  const int64_t n = params_.particles;
  const DiffusionSchedule schedule = method_schedule(model, p.respacing);
  const std::vector<int64_t> steps = ddim_list(p, schedule.size(), "resample");
  ForwardSamples forward(schedule, input, p.share_forward_noise);
  c10::InferenceMode no_grad;  // no graph, no version counters: results are inference tensors
  ParticleFilter particles(params_, schedule, input, mask);
  const at::Tensor& mask_p = particles.mask();

  InpaintOutput out;
  at::Tensor x = draw_noise(input, "x_T", -1, steps.front(), particles.like());
  const int64_t total = static_cast<int64_t>(steps.size()) - 1;
  for (int64_t k = 0; k < total; ++k) {
    const int64_t cur = steps[k], prev = steps[k + 1];
    x = particles.spread(forward.at_step(cur, k)) * mask_p + at::rsub(mask_p, 1.0) * x;
    x = hooked_x_in(input, k, x);
    const at::Tensor t = batch_steps(cur, x), t_prev = batch_steps(prev, x);
    const at::Tensor eps = predict_eps(model, schedule, x, t, particles.labels(), out.evals);
    out.evals.forwards += n - 1;  // one evaluation per particle
    at::Tensor x0 = x0_from_eps(schedule, x, t, eps);
    if (p.clip_denoised) x0 = x0.clamp(-1, 1);
    const at::Tensor noise =
        p.eta > 0 ? draw_noise(input, "ddim", k, cur, particles.like()) : at::Tensor();
    const at::Tensor stepped = ddim_step(schedule, x0, eps, t, t_prev, p.eta, noise);
    const at::Tensor mse = params_.reference_last_weights && prev == 0
                               ? particles.all_pairs_mse(k, stepped)
                               : particles.known_mse(forward.at_step(prev, k), stepped);
    at::Tensor weights;
    const at::Tensor rows =
        particles.resample(mse, n, "resample", k, prev, input.hooks ? &weights : nullptr);
    if (input.hooks) {
      StepRecord r = step_record(k, k, cur, prev, x, eps, x0, stepped);
      r.weights = weights;
      r.indices = rows;
      hooked_record(input, r);
    }
    x = (params_.resample_pre_step ? x : stepped).index_select(0, rows);
    if (input.on_step) input.on_step(k + 1, total);
  }
  const at::Tensor rows = particles.resample(particles.known_mse(input.image, x), 1,
                                             "resample_final", total, -1, nullptr);
  if (input.hooks && input.hooks->on_final_pick) input.hooks->on_final_pick(rows);
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
