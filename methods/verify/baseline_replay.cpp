// Baseline recordings: loading, the draw replay, the per-method draw mappings and settings, and
// one replayed run with its errors.
#include "methods/verify/baseline_replay.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "framework/diffusion/diffusion.h"
#include "methods/reference_config.h"
#include "methods/verify/fixture_io.h"

namespace copaint {
namespace fs = std::filesystem;
namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

// ---- the mappings of our draws onto the reference's ------------------------------------------

at::Tensor value_of(const DrawReplay::Draw* d) { return d ? d->value : at::Tensor(); }

/// A recorded Gaussian draw of `role`, checked to be at the request's t (when `check_t`).
at::Tensor gaussian(DrawReplay& replay, const std::string& role, const DrawRequest& r,
                    bool check_t) {
  const DrawReplay::Draw* d = replay.next(role);
  if (d && check_t && d->t != r.t) {
    replay.note(role + " draw at t=" + std::to_string(d->t) +
                " served at t=" + std::to_string(r.t));
  }
  return value_of(d);
}

/// The forward-noise draw of respaced step t with the request's batch size (the reference draws
/// x_forward[0] for the whole batch and every later one for sample 0).
at::Tensor forward_draw(DrawReplay& replay, const DrawRequest& r) {
  return value_of(replay.next("x_forward", [&](const DrawReplay::Draw& d) {
    return d.t == r.t && d.value.size(0) == r.like.size(0);
  }));
}

/// The first k indices of the multinomial draw the reference made at `step` (without
/// replacement, torch's first k of a larger draw are the same draw: topk of the same keys).
at::Tensor multinomial_draw(DrawReplay& replay, const DrawRequest& r, int64_t step) {
  const at::Tensor v = value_of(
      replay.next("resample_remainder", [&](const DrawReplay::Draw& d) { return d.step == step; }));
  if (!v.defined()) return v;
  if (v.numel() < r.k) replay.note("resample draw at step " + std::to_string(step) + " too short");
  return v.narrow(0, 0, std::min<int64_t>(r.k, v.numel()));
}

at::Tensor unexpected(DrawReplay& replay, const DrawRequest& r) {
  replay.note("unexpected draw '" + r.role + "'");
  return at::Tensor();
}

DrawMapper blended_mapper() {
  return [](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "forward") return forward_draw(replay, r);
    return unexpected(replay, r);
  };
}

DrawMapper resample_mapper(int64_t last_step) {
  return [last_step](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "forward") return forward_draw(replay, r);
    if (r.role == "resample") return multinomial_draw(replay, r, r.step);
    if (r.role == "resample_final") return multinomial_draw(replay, r, last_step);
    return unexpected(replay, r);
  };
}

DrawMapper repaint_mapper() {
  return [](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "step") return gaussian(replay, "step_noise", r, true);
    if (r.role == "inject") return gaussian(replay, "known_region_noise", r, true);
    if (r.role == "undo") return gaussian(replay, "undo_noise", r, true);
    return unexpected(replay, r);
  };
}

DrawMapper ddnm_mapper() {
  return [](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "step") return gaussian(replay, "step_noise", r, true);
    return unexpected(replay, r);
  };
}

/// DDRM's reference works on vectors in the basis of its SVD of A (V^T x), measured entries
/// first. Its initialisation adds x_T in NCHW order to such a vector, so our x_T is V(x_T); its
/// step noise on the measured entries is noise_B, i.e. our step draw V(noise_B, 0) (the free part
/// is multiplied by etaC = 0 in the reference and left 0 here). `to_image` is V.
DrawMapper ddrm_vector_mapper(std::function<at::Tensor(const at::Tensor&)> to_image, int64_t n) {
  return [=](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") {
      const at::Tensor v = value_of(replay.next("x_T"));
      return v.defined() ? to_image(v.reshape({-1})) : v;
    }
    if (r.role == "step") {
      replay.next("noise_C");
      replay.next("noise_A");
      const at::Tensor b = value_of(replay.next("noise_B"));
      if (!b.defined()) return b;
      return to_image(at::cat({b.reshape({-1}), at::zeros({n - b.numel()})}));
    }
    return unexpected(replay, r);
  };
}

/// Inpainting: V sends vector entry j to kept_indices[j] (j < K) or missing_indices[j-K], where an
/// index i means pixel i / C (row-major), channel i % C.
DrawMapper ddrm_inpaint_mapper(const BaselineRecording& rec) {
  const at::Tensor kept = rec.get("kept_indices").to(at::kLong).reshape({-1});
  const at::Tensor missing = rec.get("missing_indices").to(at::kLong).reshape({-1});
  const at::Tensor order = at::cat({kept, missing});
  const auto shape = rec.get("x_T").sizes().vec();  // [1,C,H,W]
  const int64_t n = shape[1] * shape[2] * shape[3];
  auto to_image = [=](const at::Tensor& v) {
    return at::zeros({n})
        .index_put_({order}, v)
        .reshape({1, shape[2], shape[3], shape[1]})
        .permute({0, 3, 1, 2})
        .contiguous();
  };
  return ddrm_vector_mapper(to_image, n);
}

/// Super-resolution by r: the reference's SVD of the r x r averaging row h = (1/r^2, ...), taken
/// as it takes it (torch.svd(h, some=False): V_small, r^2 x r^2, first column +-h/|h|). Vector
/// entries 0 .. C*m-1 (m = (H/r)^2 patches, channel-major) are the patches' first coordinates,
/// entry C*m + i + (r^2-1) q the (i+1)-th coordinate of patch q; V multiplies each patch's
/// coordinates by V_small and lays the r x r patch out in the image.
DrawMapper ddrm_super_resolution_mapper(const BaselineRecording& rec, int64_t r) {
  const auto shape = rec.get("x_T").sizes().vec();  // [1,C,H,W]
  const int64_t c = shape[1], size = shape[2], side = size / r, m = side * side;
  const int64_t n = c * size * size;
  const at::Tensor h = at::full({1, r * r}, 1.0 / static_cast<double>(r * r));
  const at::Tensor v_small = std::get<2>(at::linalg_svd(h, /*full_matrices=*/true)).t();
  auto to_image = [=](const at::Tensor& v) {
    const at::Tensor first = v.narrow(0, 0, c * m).reshape({c, m, 1});
    const at::Tensor rest = v.narrow(0, c * m, n - c * m).reshape({c, m, r * r - 1});
    const at::Tensor patches = at::matmul(at::cat({first, rest}, 2), v_small.t());
    return patches.reshape({1, c, side, side, r, r})
        .permute({0, 1, 2, 4, 3, 5})
        .reshape({1, c, size, size})
        .contiguous();
  };
  return ddrm_vector_mapper(to_image, n);
}

DrawMapper dps_mapper() {
  return [](DrawReplay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "measurement") return gaussian(replay, "measurement_noise", r, false);
    if (r.role == "step") {
      replay.next("noisy_measurement");  // drawn by the reference, unused by its 'ps' method
      return gaussian(replay, "step_noise", r, true);
    }
    return unexpected(replay, r);
  };
}

}  // namespace

// ---- the recording ------------------------------------------------------------------------------

bool BaselineRecording::has(const std::string& key) const {
  return dict.toGenericDict().contains(key);
}

at::Tensor BaselineRecording::get(const std::string& key) const {
  if (!has(key)) throw InputError(name + ".pt has no '" + key + "' entry");
  return dict.toGenericDict().at(key).toTensor();
}

std::vector<at::Tensor> BaselineRecording::tensors(const std::string& key) const {
  if (!has(key)) throw InputError(name + ".pt has no '" + key + "' entry");
  std::vector<at::Tensor> out;
  for (const auto& v : dict.toGenericDict().at(key).toListRef()) out.push_back(v.toTensor());
  return out;
}

std::vector<std::string> BaselineRecording::strings(const std::string& key) const {
  if (!has(key)) throw InputError(name + ".pt has no '" + key + "' entry");
  std::vector<std::string> out;
  for (const auto& v : dict.toGenericDict().at(key).toListRef()) out.push_back(v.toStringRef());
  return out;
}

bool is_baseline_recording(const nlohmann::json& json) {
  return json.is_object() && json.contains("method") && json.contains("sampler_class");
}

BaselineRecording load_baseline_recording(const std::string& json_path) {
  const fs::path json(json_path);
  BaselineRecording r;
  r.name = json.stem().string();
  r.json = read_json(json_path);
  if (!is_baseline_recording(r.json)) {
    throw InputError("'" + json_path + "' is not a recorded baseline run (no method)");
  }
  const fs::path root = fs::absolute(json).parent_path().parent_path();
  try {
    r.method = r.json.at("method").get<std::string>();
    r.model_path = (root / r.json.at("model").get<std::string>()).string();
    r.model_config_path = (root / r.json.at("model_config").get<std::string>()).string();
  } catch (const nlohmann::json::exception& e) {
    throw InputError("'" + json_path + "' is not a recorded baseline run: " + e.what());
  }
  fs::path pt = json;
  pt.replace_extension(".pt");
  r.dict = read_pickled_dict(pt.string());
  return r;
}

// ---- the replay ---------------------------------------------------------------------------------

DrawReplay::DrawReplay(const BaselineRecording& rec) {
  const auto values = rec.tensors("rng");
  const auto roles = rec.strings("rng_role");
  const at::Tensor steps = rec.get("rng_step"), ts = rec.get("rng_t");
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string role = roles[i].substr(0, roles[i].find(" ("));
    const auto k = static_cast<int64_t>(i);
    draws_[role].push_back({values[i], steps[k].item<int64_t>(), ts[k].item<int64_t>()});
  }
  recorded_ = static_cast<int64_t>(values.size());
}

const DrawReplay::Draw* DrawReplay::next(const std::string& role,
                                         const std::function<bool(const Draw&)>& pick) {
  for (auto& d : draws_[role]) {
    if (!d.used && (!pick || pick(d))) {
      d.used = true;
      ++served_;
      return &d;
    }
  }
  note("no recorded '" + role + "' draw left");
  return nullptr;
}

int64_t DrawReplay::unused(const std::string& role) const {
  const auto it = draws_.find(role);
  if (it == draws_.end()) return 0;
  return std::count_if(it->second.begin(), it->second.end(), [](const Draw& d) { return !d.used; });
}

// ---- the cases ----------------------------------------------------------------------------------

BaselineCase baseline_case(const BaselineRecording& rec) {
  BaselineCase c;
  c.name = rec.name;
  const auto settings = reference_settings(rec.json.at("settings"));
  try {
    c.method = method_for_algorithm(rec.method, false);
    c.settings = options_from_reference(c.method, settings);
  } catch (const UsageError& e) {
    throw InputError(rec.name + ": " + e.what());
  }
  // The options that restore the reference where our default differs on purpose, and the draws.
  if (c.method == "blended") {
    c.map = blended_mapper();
    c.required_roles = {"x_T"};
  } else if (c.method == "resample") {
    c.particles = rec.get("x_T").size(0);
    c.settings.set("particles", std::to_string(c.particles));
    c.settings.set("resample_pre_step", "true");
    c.settings.set("reference_last_weights", "true");
    c.map = resample_mapper(rec.steps() - 1);
    c.required_roles = {"x_T", "resample_remainder"};
  } else if (c.method == "repaint") {
    c.map = repaint_mapper();
    c.required_roles = {"x_T", "step_noise", "known_region_noise", "undo_noise"};
  } else if (c.method == "ddnm") {
    c.map = ddnm_mapper();
    c.required_roles = {"x_T", "step_noise"};
  } else if (c.method == "ddrm") {
    const bool sr = c.settings.get("mode", "inpaint") == "super_resolution";
    const int64_t scale = sr ? std::stoll(c.settings.get("scale", "0")) : 0;
    if (sr && scale < 1) throw InputError(rec.name + ": super_resolution needs a scale >= 1");
    c.map = sr ? ddrm_super_resolution_mapper(rec, scale) : ddrm_inpaint_mapper(rec);
    c.required_roles = {"x_T", "noise_B"};
  } else if (c.method == "dps") {
    c.settings.set("batch_norm", "true");
    c.map = dps_mapper();
    c.required_roles = {"x_T", "measurement_noise", "step_noise"};
  } else {
    throw InputError(rec.name + ": no replay for the reference's '" + rec.method + "' sampler");
  }
  return c;
}

namespace {

/// Compares each network call's record with the recording's call `r.call`.
void compare_call(const BaselineRecording& rec, const DiffusionSchedule& schedule,
                  const StepRecord& r, BaselineErrors& e) {
  const int64_t k = r.call;
  if (k >= rec.steps()) {
    if (k == rec.steps()) e.problems.push_back("more network calls than the reference made");
    return;
  }
  const int64_t ref_t = rec.get("step_t")[k].item<int64_t>();
  if (r.t != ref_t) {
    e.problems.push_back("call " + std::to_string(k) + " at t=" + std::to_string(r.t) +
                         ", the reference at t=" + std::to_string(ref_t));
  }
  const double s = std::sqrt(schedule.alpha_bar(r.t));
  const at::Tensor pred = rec.get("pred_x0")[k];
  e.x0 = std::max(e.x0, max_abs(r.pred_x0, pred) * s);
  e.x0_raw = std::max(e.x0_raw, max_abs(r.pred_x0, pred));
  e.out = std::max(e.out, max_abs(r.x_out, rec.get("trajectory")[k]));
  e.eps = std::max(e.eps, max_abs(r.eps, rec.get("eps")[k]));
  e.x_in = std::max(e.x_in, max_abs(r.x_in, rec.get("x_in")[k]));
  if (r.weights.defined()) {
    const auto p = rec.tensors("resample_p");
    const auto idx = rec.tensors("resample_indices");
    e.extra = std::max(e.extra, max_abs(r.weights[0], p[static_cast<size_t>(k)]));
    e.index_mismatches +=
        !at::equal(r.indices.to(at::kCPU, at::kLong), idx[static_cast<size_t>(k)].to(at::kLong));
  }
  if (r.grad.defined()) {
    e.extra = std::max(e.extra, max_abs(r.grad, rec.get("dps_grad")[k]));
    const double ref = rec.get("dps_norm")[k].item<double>();
    e.norm = std::max(e.norm, std::abs(r.norm.item<double>() - ref) / ref);
  }
  ++e.calls;
}

}  // namespace

BaselineErrors replay_baseline(const BaselineRecording& rec, const BaselineCase& c, Method& method,
                               Denoiser& model, bool per_step, const c10::Device& device) {
  DrawReplay replay(rec);
  const auto schedule =
      DiffusionSchedule::linear(model.num_train_timesteps()).respaced(c.settings.get("respacing"));
  const int64_t batch = rec.get("x_T").size(0) / c.particles;
  InpaintInput input;
  input.image = rec.get("image").expand({batch, -1, -1, -1}).contiguous().to(device);
  input.mask = rec.get("mask").to(device);
  for (int64_t b = 0; b < batch; ++b) {
    input.generators.push_back(at::make_generator<at::CPUGeneratorImpl>(1000 + b));
  }
  input.noise = [&](const DrawRequest& r) { return c.map(replay, r); };
  const at::Tensor x_in = rec.get("x_in");
  BaselineErrors e;
  StepHooks hooks;
  if (per_step) {
    hooks.replace_x_in = [&](int64_t call, const at::Tensor&) {
      return call < x_in.size(0) ? x_in[call] : at::Tensor();
    };
  }
  hooks.on_record = [&](const StepRecord& r) { compare_call(rec, schedule, r, e); };
  hooks.on_final_pick = [&](const at::Tensor& rows) {
    // The reference keeps keep_n_samples of its particles; this sample is the first of them.
    const auto idx = rec.tensors("resample_indices");
    e.index_mismatches += rows[0].item<int64_t>() != idx.back()[0].item<int64_t>();
  };
  input.hooks = &hooks;
  const InpaintOutput out = method.run(model, input);
  e.evals = out.evals;
  e.sample = max_abs(out.sample, rec.get("sample").narrow(0, 0, out.sample.size(0)));
  if (e.calls != rec.steps()) {
    e.problems.push_back(std::to_string(e.calls) + " network calls, the reference made " +
                         std::to_string(rec.steps()));
  }
  e.served = replay.served();
  e.recorded = replay.recorded();
  for (const auto& role : c.required_roles) e.unused_required += replay.unused(role);
  e.problems.insert(e.problems.end(), replay.problems().begin(), replay.problems().end());
  return e;
}

}  // namespace copaint
