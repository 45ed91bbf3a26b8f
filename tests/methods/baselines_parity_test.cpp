// Parity of the six baselines (blended = the reference's ddim, resample, repaint, ddnm, ddrm, dps)
// with the official implementation's recorded runs (tests/fixtures/baselines, see its README):
// every step from the reference's own input (x_in replaced before each network call), and the
// whole run from the recorded x_T, with every random draw replayed from the recording by role and
// step (DrawRequest). Run with the options that restore the reference where our default differs
// on purpose; the effect of each such default on the recorded case is printed too.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "framework/diffusion.h"
#include "framework/registry.h"
#include "framework/schedule.h"
#include "methods/ddnm.h"
#include "methods/ddrm.h"
#include "methods/dps.h"
#include "methods/repaint.h"
#include "methods/replacement.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

double max_abs(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

/// One recorded reference run (`<case>.pt` and `<case>.json`).
struct Recording {
  std::string name;
  c10::impl::GenericDict dict{c10::StringType::get(), c10::AnyType::get()};
  nlohmann::json json;

  bool has(const std::string& key) const { return dict.contains(key); }
  at::Tensor get(const std::string& key) const { return dict.at(key).toTensor(); }
  std::vector<at::Tensor> tensors(const std::string& key) const {
    std::vector<at::Tensor> out;
    for (const auto& v : dict.at(key).toListRef()) out.push_back(v.toTensor());
    return out;
  }
  std::vector<std::string> strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& v : dict.at(key).toListRef()) out.push_back(v.toStringRef());
    return out;
  }
  int64_t steps() const { return get("x_in").size(0); }
};

Recording load_recording(const std::string& name) {
  Recording r;
  r.name = name;
  r.dict = fixtures::load_dict(fixtures::kFixtures + "/baselines/" + name + ".pt").toGenericDict();
  r.json = fixtures::load_json(fixtures::kFixtures + "/baselines/" + name + ".json");
  return r;
}

/// The recorded draws, by role (the recording's role up to " ("), in call order.
struct RecordedDraw {
  at::Tensor value;
  int64_t step, t;
  bool used = false;
};

class Replay {
 public:
  explicit Replay(const Recording& rec) {
    const auto values = rec.tensors("rng");
    const auto roles = rec.strings("rng_role");
    const at::Tensor steps = rec.get("rng_step"), ts = rec.get("rng_t");
    for (size_t i = 0; i < values.size(); ++i) {
      std::string role = roles[i];
      role = role.substr(0, role.find(" ("));
      draws_[role].push_back({values[i], steps[static_cast<int64_t>(i)].item<int64_t>(),
                              ts[static_cast<int64_t>(i)].item<int64_t>()});
    }
  }
  /// The next unused draw of `role` satisfying `pick` (fails the test when there is none).
  RecordedDraw& next(const std::string& role,
                     const std::function<bool(const RecordedDraw&)>& pick = nullptr) {
    auto& list = draws_[role];
    for (auto& d : list) {
      if (!d.used && (!pick || pick(d))) {
        d.used = true;
        ++served_;
        return d;
      }
    }
    ADD_FAILURE() << "no recorded '" << role << "' draw left";
    static RecordedDraw none{at::Tensor(), -1, -1};
    return none;
  }
  /// Recorded draws of `role` not served.
  int64_t unused(const std::string& role) {
    int64_t n = 0;
    for (const auto& d : draws_[role]) n += !d.used;
    return n;
  }
  int64_t served() const { return served_; }

 private:
  std::map<std::string, std::vector<RecordedDraw>> draws_;
  int64_t served_ = 0;
};

/// How a method's requests map onto the recording: returns the value for a request.
using Mapper = std::function<at::Tensor(Replay&, const DrawRequest&)>;

/// What one run (per step or end to end) gives, compared with the recording.
struct Errors {
  double x0 = 0;      ///< max |pred_x0 - ref| * sqrt(ab_t)
  double x0_raw = 0;  ///< unscaled
  double out = 0;     ///< x_{t-1}
  double eps = 0;     ///< network output
  double x_in = 0;    ///< the state handed to each step (end to end)
  double extra = 0;   ///< resample weights, dps gradient
  double norm = 0;    ///< dps norm (relative)
  double sample = 0;  ///< final sample
  int64_t calls = 0, index_mismatches = 0;
  int64_t served = 0, recorded = 0;  ///< draws replayed, draws in the recording
  int64_t unused_required = 0;       ///< recorded draws of Case::required_roles left unused
  EvalCounter evals;
};

struct Case {
  std::string name;
  std::function<std::unique_ptr<Method>()> make;  ///< the method with the reference's settings
  Mapper map;
  int64_t particles = 1;  ///< resample: the recorded batch is one sample's particles
  /// Recorded roles every draw of which the run must replay (the others are multiplied by 0 or
  /// unused in the reference, or never visited).
  std::vector<std::string> required_roles;
};

Errors run_case(const Recording& rec, const Case& c, bool per_step, Method& method) {
  Replay replay(rec);
  const auto schedule = DiffusionSchedule::linear(1000).respaced(
      rec.json["settings"]["timestep_respacing"].get<std::string>());
  const at::Tensor x_T = rec.get("x_T");
  const int64_t batch = x_T.size(0) / c.particles;
  InpaintInput input;
  input.image = rec.get("image").expand({batch, -1, -1, -1}).contiguous();
  input.mask = rec.get("mask");
  for (int64_t b = 0; b < batch; ++b) {
    input.generators.push_back(at::make_generator<at::CPUGeneratorImpl>(1000 + b));
  }
  input.noise = [&](const DrawRequest& r) { return c.map(replay, r); };
  const at::Tensor x_in = rec.get("x_in"), pred = rec.get("pred_x0"), traj = rec.get("trajectory");
  const at::Tensor eps = rec.get("eps");
  Errors e;
  StepHooks hooks;
  if (per_step) {
    hooks.replace_x_in = [&](int64_t call, const at::Tensor&) { return x_in[call]; };
  }
  hooks.on_record = [&](const StepRecord& r) {
    const int64_t k = r.call;
    EXPECT_EQ(r.t, rec.get("step_t")[k].item<int64_t>()) << "call " << k;
    const double s = std::sqrt(schedule.alpha_bar(r.t));
    e.x0 = std::max(e.x0, max_abs(r.pred_x0, pred[k]) * s);
    e.x0_raw = std::max(e.x0_raw, max_abs(r.pred_x0, pred[k]));
    e.out = std::max(e.out, max_abs(r.x_out, traj[k]));
    e.eps = std::max(e.eps, max_abs(r.eps, eps[k]));
    e.x_in = std::max(e.x_in, max_abs(r.x_in, x_in[k]));
    if (r.weights.defined()) {
      const auto p = rec.tensors("resample_p");
      const auto idx = rec.tensors("resample_indices");
      e.extra = std::max(e.extra, max_abs(r.weights[0], p[static_cast<size_t>(k)]));
      e.index_mismatches +=
          !at::equal(r.indices.to(at::kLong), idx[static_cast<size_t>(k)].to(at::kLong));
    }
    if (r.grad.defined()) {
      e.extra = std::max(e.extra, max_abs(r.grad, rec.get("dps_grad")[k]));
      const double ref = rec.get("dps_norm")[k].item<double>();
      e.norm = std::max(e.norm, std::abs(r.norm.item<double>() - ref) / ref);
    }
    ++e.calls;
  };
  hooks.on_final_pick = [&](const at::Tensor& rows) {
    const auto idx = rec.tensors("resample_indices");
    // The reference keeps keep_n_samples of its particles; this sample is the first of them.
    e.index_mismatches += rows[0].item<int64_t>() != idx.back()[0].item<int64_t>();
  };
  input.hooks = &hooks;
  const InpaintOutput out = method.run(fixtures::tiny_model(), input);
  e.evals = out.evals;
  const at::Tensor ref_sample = rec.get("sample");
  e.sample = max_abs(out.sample, ref_sample.narrow(0, 0, out.sample.size(0)));
  EXPECT_EQ(e.calls, rec.steps());
  e.served = replay.served();
  e.recorded = static_cast<int64_t>(rec.tensors("rng").size());
  for (const auto& role : c.required_roles) e.unused_required += replay.unused(role);
  return e;
}

// ---- the mappings of our draws onto the reference's ------------------------------------------

/// A recorded Gaussian draw of `role`, checked to be at the request's t (when `check_t`).
at::Tensor gaussian(Replay& replay, const std::string& role, const DrawRequest& r, bool check_t) {
  RecordedDraw& d = replay.next(role);
  if (check_t) EXPECT_EQ(d.t, r.t) << role << " at step " << r.step;
  return d.value;
}

/// The forward-noise draw of respaced step t with the request's batch size (the reference draws
/// x_forward[0] for the whole batch and every later one for sample 0).
at::Tensor forward_draw(Replay& replay, const DrawRequest& r) {
  return replay
      .next("x_forward",
            [&](const RecordedDraw& d) { return d.t == r.t && d.value.size(0) == r.like.size(0); })
      .value;
}

/// The first k indices of the multinomial draw the reference made at `step` (without
/// replacement, torch's first k of a larger draw are the same draw: topk of the same keys).
at::Tensor multinomial_draw(Replay& replay, const DrawRequest& r, int64_t step) {
  const at::Tensor v =
      replay.next("resample_remainder", [&](const RecordedDraw& d) { return d.step == step; })
          .value;
  EXPECT_GE(v.numel(), r.k);
  return v.narrow(0, 0, std::min<int64_t>(r.k, v.numel()));
}

Mapper blended_mapper() {
  return [](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "forward") return forward_draw(replay, r);
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

Mapper resample_mapper(int64_t last_step) {
  return [last_step](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "forward") return forward_draw(replay, r);
    if (r.role == "resample") return multinomial_draw(replay, r, r.step);
    if (r.role == "resample_final") return multinomial_draw(replay, r, last_step);
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

Mapper repaint_mapper() {
  return [](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "step") return gaussian(replay, "step_noise", r, true);
    if (r.role == "inject") return gaussian(replay, "known_region_noise", r, true);
    if (r.role == "undo") return gaussian(replay, "undo_noise", r, true);
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

Mapper ddnm_mapper() {
  return [](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "step") return gaussian(replay, "step_noise", r, true);
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

/// DDRM's reference works on vectors: entries 0..K-1 are the known values in kept_indices order,
/// then the missing_indices; vector index i is pixel i / 3 (row-major), channel i % 3. Its
/// initialisation adds x_T in NCHW order to such a vector, so our x_T is that permutation of the
/// recorded x_T; its step's known-region noise is noise_B (our step draw on the known pixels; the
/// free part is multiplied by etaC = 0 in the reference, left 0 here).
Mapper ddrm_mapper(const Recording& rec) {
  const at::Tensor kept = rec.get("kept_indices").to(at::kLong).reshape({-1});
  const at::Tensor missing = rec.get("missing_indices").to(at::kLong).reshape({-1});
  const at::Tensor order = at::cat({kept, missing});
  auto to_image = [](const at::Tensor& hwc_flat) {
    return hwc_flat.reshape({1, 32, 32, 3}).permute({0, 3, 1, 2}).contiguous();
  };
  return [=](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") {
      const at::Tensor v = replay.next("x_T").value.reshape({-1});
      return to_image(at::zeros({3072}).index_put_({order}, v));
    }
    if (r.role == "step") {
      replay.next("noise_C");
      replay.next("noise_A");
      const at::Tensor b = replay.next("noise_B").value.reshape({-1});
      return to_image(at::zeros({3072}).index_put_({kept}, b));
    }
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

Mapper dps_mapper() {
  return [](Replay& replay, const DrawRequest& r) {
    if (r.role == "x_T") return gaussian(replay, "x_T", r, false);
    if (r.role == "measurement") return gaussian(replay, "measurement_noise", r, false);
    if (r.role == "step") {
      replay.next("noisy_measurement");  // drawn by the reference, unused by its 'ps' method
      return gaussian(replay, "step_noise", r, true);
    }
    ADD_FAILURE() << "unexpected draw " << r.role;
    return at::Tensor();
  };
}

// ---- the cases with the reference's settings ---------------------------------------------------

std::unique_ptr<Method> create(const std::string& method, const Options& options) {
  register_builtin_methods();
  return Registry<Method>::global().create(method, options);
}

Case make_case(const std::string& name) {
  const Recording rec = load_recording(name);
  const auto& s = rec.json["settings"];
  const std::string respacing = s["timestep_respacing"];
  Case c;
  c.name = name;
  if (name == "ddim_half") {
    const std::string steps =
        std::to_string(s["ddim"]["schedule_params"]["num_inference_steps"].get<int64_t>());
    c.make = [=] { return create("blended", {{"respacing", respacing}, {"steps", steps}}); };
    c.map = blended_mapper();
    c.required_roles = {"x_T"};
  } else if (name == "resample_half_p4") {
    const std::string steps =
        std::to_string(s["ddim"]["schedule_params"]["num_inference_steps"].get<int64_t>());
    c.particles = rec.get("x_T").size(0);
    const std::string particles = std::to_string(c.particles);
    c.make = [=] {
      return create("resample", {{"respacing", respacing},
                                 {"steps", steps},
                                 {"particles", particles},
                                 {"resample_pre_step", "true"},
                                 {"reference_last_weights", "true"}});
    };
    c.map = resample_mapper(rec.steps() - 1);
    c.required_roles = {"x_T", "resample_remainder"};
  } else if (name.rfind("repaint", 0) == 0) {
    const auto& j = s["repaint"]["schedule_jump_params"];
    c.make = [=] {
      return create("repaint",
                    {{"respacing", respacing},
                     {"t_T", std::to_string(j["t_T"].get<int64_t>())},
                     {"n_sample", std::to_string(j["n_sample"].get<int64_t>())},
                     {"jump_length", std::to_string(j["jump_length"].get<int64_t>())},
                     {"jump_n_sample", std::to_string(j["jump_n_sample"].get<int64_t>())}});
    };
    c.map = repaint_mapper();
    c.required_roles = {"x_T", "step_noise", "known_region_noise", "undo_noise"};
  } else if (name.rfind("ddnm", 0) == 0) {
    const std::string t_T = std::to_string(s["ddnm"]["schedule_jump_params"]["t_T"].get<int64_t>());
    c.make = [=] { return create("ddnm", {{"respacing", respacing}, {"t_T", t_T}}); };
    c.map = ddnm_mapper();
    c.required_roles = {"x_T", "step_noise"};
  } else if (name == "ddrm_half") {
    const std::string t_T = std::to_string(s["ddrm"]["schedule_jump_params"]["t_T"].get<int64_t>());
    c.make = [=] { return create("ddrm", {{"respacing", respacing}, {"t_T", t_T}}); };
    c.map = ddrm_mapper(rec);
    c.required_roles = {"x_T", "noise_B"};
  } else if (name == "dps_half_n2") {
    const std::string t_T = std::to_string(s["dps"]["schedule_jump_params"]["t_T"].get<int64_t>());
    c.make = [=] {
      return create("dps", {{"respacing", respacing}, {"t_T", t_T}, {"batch_norm", "true"}});
    };
    c.map = dps_mapper();
    c.required_roles = {"x_T", "measurement_noise", "step_noise"};
  }
  return c;
}

const std::vector<std::string> kCases = {"ddim_half",      "resample_half_p4", "repaint_half",
                                         "repaint_expand", "ddnm_half",        "ddnm_expand",
                                         "ddrm_half",      "dps_half_n2"};

class BaselineParity : public testing::TestWithParam<std::string> {};

TEST_P(BaselineParity, StepsFromReferenceInputs) {
  const Recording rec = load_recording(GetParam());
  const Case c = make_case(GetParam());
  const auto method = c.make();
  const Errors e = run_case(rec, c, /*per_step=*/true, *method);
  EXPECT_LE(e.x0, 1e-4) << "pred_x0 error scaled by sqrt(alpha_bar_t)";
  EXPECT_LE(e.out, 1e-4);
  EXPECT_EQ(e.index_mismatches, 0);
  if (rec.has("resample_p")) EXPECT_LE(e.extra, 1e-4) << "resample weights";
  if (rec.has("dps_grad")) {
    EXPECT_LE(e.extra, 1e-3) << "dps gradient";
    EXPECT_LE(e.norm, 1e-5) << "dps norm (relative)";
  }
  std::printf(
      "[%s] per step: pred_x0*sqrt(ab) %.3g (unscaled %.3g) x_prev %.3g eps %.3g%s %.3g "
      "index mismatches %lld\n",
      GetParam().c_str(), e.x0, e.x0_raw, e.out, e.eps, rec.has("dps_grad") ? " grad" : " weights",
      e.extra, static_cast<long long>(e.index_mismatches));
}

TEST_P(BaselineParity, EndToEnd) {
  const Recording rec = load_recording(GetParam());
  const Case c = make_case(GetParam());
  const auto method = c.make();
  const Errors e = run_case(rec, c, /*per_step=*/false, *method);
  EXPECT_LE(e.out, 1e-4) << "trajectory";
  EXPECT_LE(e.x_in, 1e-4) << "step inputs";
  EXPECT_LE(e.sample, 1e-4);
  EXPECT_EQ(e.index_mismatches, 0);
  EXPECT_EQ(e.unused_required, 0) << "recorded draws not replayed";
  const int64_t ref_forwards = rec.json["unet_forward"];
  const int64_t ref_backwards = rec.json["unet_backward"];
  // Resample counts one evaluation per particle; the reference's count is of batched calls.
  const int64_t calls = e.evals.forwards / c.particles;
  EXPECT_LE(calls, ref_forwards);
  EXPECT_EQ(e.evals.forwards % c.particles, 0);
  EXPECT_LE(e.evals.backwards, ref_backwards);
  EXPECT_EQ(method->expected_forwards() / c.particles, ref_forwards);
  std::printf(
      "[%s] end to end: sample %.3g trajectory %.3g x_in %.3g; forwards %lld (%lld calls) "
      "backwards %lld, reference %lld / %lld; draws replayed %lld of %lld recorded\n",
      GetParam().c_str(), e.sample, e.out, e.x_in, static_cast<long long>(e.evals.forwards),
      static_cast<long long>(calls), static_cast<long long>(e.evals.backwards),
      static_cast<long long>(ref_forwards), static_cast<long long>(ref_backwards),
      static_cast<long long>(e.served), static_cast<long long>(e.recorded));
}

INSTANTIATE_TEST_SUITE_P(Baselines, BaselineParity, testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param; });

// Where our default differs from the reference on purpose, the recorded case run with the
// default (draws replayed where they exist) must differ, by how much is printed.
struct DefaultDifference {
  std::string case_name, method;
  Options defaults;  ///< the case's settings without the reference-restoring option
  std::string what;
};

TEST(BaselineDefaults, DeliberateDifferencesOnTheRecordings) {
  const std::vector<DefaultDifference> diffs = {
      {"resample_half_p4",
       "resample",
       {{"respacing", "10"},
        {"steps", "10"},
        {"particles", "4"},
        {"reference_last_weights", "true"}},
       "resample_pre_step=false (resample the stepped particles)"},
      {"resample_half_p4",
       "resample",
       {{"respacing", "10"}, {"steps", "10"}, {"particles", "4"}, {"resample_pre_step", "true"}},
       "reference_last_weights=false"},
      {"ddnm_half",
       "ddnm",
       {{"respacing", "25"}, {"t_T", "25"}, {"paper_update", "true"}},
       "paper_update=true (no gamma_t)"},
      {"ddrm_half",
       "ddrm",
       {{"respacing", "25"}, {"t_T", "25"}, {"eta", "0.85"}},
       "eta=0.85 (the DDRM paper's; its step noise from the generators)"},
      {"dps_half_n2",
       "dps",
       {{"respacing", "15"}, {"t_T", "15"}},
       "batch_norm=false (per-sample norm)"},
  };
  for (const auto& d : diffs) {
    const Recording rec = load_recording(d.case_name);
    Case c = make_case(d.case_name);
    const auto method = create(d.method, d.defaults);
    // A different algorithm needs other draws: resampling draws, DDRM's eta noise and any draw
    // the recording lacks come from the generators.
    const Mapper inner = c.map;
    const bool ddrm = d.method == "ddrm";
    c.map = [inner, ddrm](Replay& replay, const DrawRequest& r) -> at::Tensor {
      if (r.kind == DrawRequest::Kind::kMultinomial || (ddrm && r.role == "step")) {
        return at::Tensor();
      }
      return inner(replay, r);
    };
    Errors e;
    {
      // Mismatches inside (draw counts, indices) are expected here: only the numbers count.
      testing::TestPartResultArray failures;
      testing::ScopedFakeTestPartResultReporter reporter(
          testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
      e = run_case(rec, c, /*per_step=*/false, *method);
    }
    EXPECT_GT(e.sample, 1e-3) << d.case_name << ": " << d.what;
    std::printf("[%s] %s: final sample differs from the reference by %.3g (trajectory %.3g)\n",
                d.case_name.c_str(), d.what.c_str(), e.sample, e.out);
  }
}

// blended.share_forward_noise: the reference's one forward-noise draw for the whole batch (from
// sample 0's generator), so every sample's step sees the same noised known region; by default
// each sample draws its own.
TEST(BaselineDefaults, BlendedSharedForwardNoise) {
  const Recording rec = load_recording("ddim_half");
  for (const bool shared : {false, true}) {
    const auto method = create(
        "blended",
        {{"respacing", "25"}, {"steps", "5"}, {"share_forward_noise", shared ? "true" : "false"}});
    InpaintInput input;
    input.image = rec.get("image").expand({2, -1, -1, -1}).contiguous();
    input.mask = rec.get("mask");
    input.generators = {at::make_generator<at::CPUGeneratorImpl>(1),
                        at::make_generator<at::CPUGeneratorImpl>(2)};
    double known_gap = -1;
    StepHooks hooks;
    hooks.on_record = [&](const StepRecord& r) {
      if (r.call == 1) known_gap = max_abs(r.x_in[0] * input.mask[0], r.x_in[1] * input.mask[0]);
    };
    input.hooks = &hooks;
    method->run(fixtures::tiny_model(), input);
    if (shared) {
      EXPECT_EQ(known_gap, 0.0);
    } else {
      EXPECT_GT(known_gap, 1e-2);
    }
  }
}

// Every setting the reference hard-codes is an option with the reference's value as default.
TEST(BaselineDefaults, HardCodedReferenceSettingsAreOptionDefaults) {
  EXPECT_DOUBLE_EQ(DDNMParams{}.eta, 0.85);
  EXPECT_DOUBLE_EQ(DDNMParams{}.sigma_y, 0.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.eta_b, 1.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.eta, 0.0);
  EXPECT_DOUBLE_EQ(DDRMParams{}.sigma_0, 0.0);
  EXPECT_DOUBLE_EQ(DPSParams{}.step_size, 1.0);
  EXPECT_DOUBLE_EQ(DPSParams{}.eta, 1.0);
  EXPECT_DOUBLE_EQ(ResampleParams{}.temperature, 100.0);
  register_builtin_methods();
  for (const auto& [method, key] : std::vector<std::pair<std::string, std::string>>{
           {"ddnm", "eta"}, {"ddrm", "eta_b"}, {"dps", "step_size"}}) {
    EXPECT_NO_THROW(create(method, {{key, "0.5"}})) << method << "." << key;
  }
}

}  // namespace
}  // namespace copaint
