// The method interface: an inpainting algorithm run on a Denoiser for a batch of problems.
// A method never loads weights or writes files.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "framework/diffusion/model.h"

namespace copaint {

/// One random draw a method is about to make, identified by role and step, so that a replay
/// source (InpaintInput::noise) can hand back a recorded value (e.g. a reference run's).
struct DrawRequest {
  enum class Kind { kRandn, kMultinomial };
  std::string role;   ///< what the draw is for ("x_T", "step", "undo", "resample", ...: per method)
  int64_t step = -1;  ///< index of the outer loop iteration it belongs to; -1 before the first
  int64_t t = -1;     ///< respaced timestep it belongs to (per method; -1 for x_T)
  Kind kind = Kind::kRandn;
  at::Tensor like;           ///< randn: a tensor with the draw's shape, dtype and device
  at::Tensor weights;        ///< multinomial: 1-D unnormalised weights (double, CPU)
  int64_t k = 0;             ///< multinomial: number of indices drawn
  bool replacement = false;  ///< multinomial: drawn with replacement
  int64_t sample = -1;       ///< multinomial: the sample whose generator draws it
  /// True for the Gaussian draws that the earlier (purpose, t, like) callback already saw; a
  /// callback of that form is asked only about these, so it keeps its old meaning.
  bool legacy = false;
};

/// Replay source for a method's random draws: returns the value for a request (randn: shaped like
/// request.like; multinomial: request.k int64 indices), or an undefined tensor to let the method
/// draw from its generators. Also accepts the earlier callback form
/// (const std::string& purpose, int64_t t, const at::Tensor& like) -> at::Tensor, which is asked
/// only about legacy Gaussian draws (DrawRequest::legacy).
class NoiseSource {
 public:
  using Fn = std::function<at::Tensor(const DrawRequest&)>;
  using PurposeFn = std::function<at::Tensor(const std::string&, int64_t, const at::Tensor&)>;

  NoiseSource() = default;
  template <typename F, typename std::enable_if<
                            !std::is_same<std::decay_t<F>, NoiseSource>::value &&
                                std::is_invocable_r<at::Tensor, F&, const DrawRequest&>::value,
                            int>::type = 0>
  NoiseSource(F f) : fn_(std::move(f)) {}  // NOLINT(google-explicit-constructor)
  template <typename F, typename std::enable_if<
                            !std::is_same<std::decay_t<F>, NoiseSource>::value &&
                                !std::is_invocable_r<at::Tensor, F&, const DrawRequest&>::value &&
                                std::is_invocable_r<at::Tensor, F&, const std::string&, int64_t,
                                                    const at::Tensor&>::value,
                            int>::type = 0>
  NoiseSource(F f)  // NOLINT(google-explicit-constructor)
      : fn_([g = PurposeFn(std::move(f))](const DrawRequest& r) {
          if (!r.legacy || r.kind != DrawRequest::Kind::kRandn) return at::Tensor();
          return g(r.role, r.t, r.like);
        }) {}

  explicit operator bool() const { return static_cast<bool>(fn_); }
  at::Tensor operator()(const DrawRequest& request) const { return fn_(request); }

 private:
  Fn fn_;
};

/// One network call of a baseline sampler as it happened, for tests (StepHooks).
struct StepRecord {
  int64_t call = 0;    ///< index of the network call, from 0
  int64_t step = 0;    ///< index of the outer loop iteration
  int64_t t = 0;       ///< respaced step of the call
  int64_t prev_t = 0;  ///< respaced step it goes to
  at::Tensor x_in;     ///< the state the step was handed (blended, resample: after the paste)
  at::Tensor eps;      ///< eps channels of the network output
  at::Tensor pred_x0;  ///< the x0 prediction the update used
  at::Tensor x_out;    ///< the step's result x_{prev_t}
  at::Tensor weights;  ///< resample: [B,N] particle weights p after the step
  at::Tensor indices;  ///< resample: the flat particle rows picked after the step
  at::Tensor grad;     ///< dps: gradient of the measurement norm w.r.t. x_in
  at::Tensor norm;     ///< dps: the norm(s) it was taken of
};

/// Test hooks of the baseline samplers (blended, resample, repaint, ddnm, ddrm, dps); empty in
/// normal runs.
struct StepHooks {
  /// Before network call `call`, given the sampler's state (StepRecord::x_in), returns the state
  /// to use instead, or an undefined tensor to keep it (e.g. a reference run's recorded input, to
  /// test each step alone).
  std::function<at::Tensor(int64_t call, const at::Tensor& x_in)> replace_x_in;
  /// After each network call's update.
  std::function<void(const StepRecord&)> on_record;
  /// Resample: after the final pick, the rows kept.
  std::function<void(const at::Tensor& rows)> on_final_pick;
};

/// One batch of inpainting problems. Sample i draws all its randomness from generators[i], so a
/// sample's result does not depend on which other samples share its batch.
struct InpaintInput {
  at::Tensor image;  ///< [B,C,H,W] in [-1,1]; only known pixels are read
  at::Tensor mask;   ///< [B,1,H,W] (or [B,C,H,W]), 1 = known pixel
  at::Tensor y;      ///< [B] int64 class labels, or undefined for unconditional models
  at::Tensor x_T;    ///< optional [B,C,H,W] initial noise; drawn from the generators if undefined
  std::vector<at::Generator> generators;  ///< one per sample (CPU generators)
  /// Replays random draws: every draw of every method is first offered here (DrawRequest, roles
  /// documented per method); an empty source or an undefined answer draws from the generators.
  /// Lets tests replay a reference run's randomness.
  NoiseSource noise;
  /// Called after each outer step with (step, total steps); may be empty.
  std::function<void(int64_t, int64_t)> on_step;
  /// Per-call test hooks of the baselines (not owned); null in normal runs.
  const StepHooks* hooks = nullptr;
};

/// What a method returns for a batch.
struct InpaintOutput {
  at::Tensor sample;  ///< [B,C,H,W] in [-1,1]
  EvalCounter evals;  ///< network evaluations spent on the whole batch
};

class Method {
 public:
  static constexpr const char* kRegistryKind = "method";
  virtual ~Method() = default;
  virtual InpaintOutput run(Denoiser& model, const InpaintInput& input) = 0;
  /// Network forwards one sample is expected to cost (for --dry-run estimates) on a model of
  /// `train_steps` training steps (Denoiser::num_train_timesteps, what run() respaces); 0 if
  /// unknown.
  virtual int64_t expected_forwards(int64_t /*train_steps*/) const { return 0; }
  /// Whether the method draws its own starting noise in a shape of its own (resample: its
  /// particles), so that a caller must not hand it an InpaintInput::x_T.
  virtual bool draws_own_initial_noise() const { return false; }
};

/// Registers every built-in method in Registry<Method>::global(). Idempotent.
void register_builtin_methods();

}  // namespace copaint
