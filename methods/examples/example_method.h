// A minimal inpainting method, as a template for adding one (methods/README.md walks through
// it): DDIM over a respaced schedule where each step's x0 prediction gets the known pixels
// pasted in before the update. Header-only so the test suite compiles it without it being a
// built-in (tests/experiments/example_method_test.cpp registers it and runs it through
// `copaint run`); a real method goes into methods/<name>.{h,cpp} and register_methods.cpp.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "framework/core/options.h"
#include "framework/core/params.h"
#include "framework/core/registry.h"
#include "framework/diffusion/ddpm.h"
#include "framework/diffusion/schedule.h"
#include "methods/method.h"
#include "methods/sampling.h"

namespace copaint {

/// Settings, read from resolved registry options (every key has its default filled in).
struct ExampleParams {
  std::string respacing = "25";  ///< respacing of the model's process (guided-diffusion rule)
  bool paste_x0 = true;          ///< paste the known pixels into each x0 prediction

  static ExampleParams from_options(const Options& o);
};

/// Every option, declared once: key, member and help (ranges chain: `.at_least(1)`); the
/// registry's listing, defaults and checks and from_options are derived from this table.
inline const std::vector<ParamField<ExampleParams>>& example_fields() {
  using P = ExampleParams;
  static const std::vector<ParamField<P>> fields = {
      field("respacing", &P::respacing, "respacing of the model's 1000-step process"),
      field("paste_x0", &P::paste_x0, "paste the known pixels into each x0 prediction"),
  };
  return fields;
}

inline ExampleParams ExampleParams::from_options(const Options& o) {
  return parse_params(example_fields(), o);
}

class ExampleMethod : public Method {
 public:
  explicit ExampleMethod(ExampleParams params) : params_(std::move(params)) {}

  InpaintOutput run(Denoiser& model, const InpaintInput& input) override {
    // Checks shapes and generators, returns the mask as [B,1,H,W] float (1 = known).
    const at::Tensor mask = check_input(model, input);
    const at::Tensor known = input.image * mask;
    const DiffusionSchedule schedule =
        DiffusionSchedule::linear(model.num_train_timesteps()).respaced(params_.respacing);
    InpaintOutput out;
    // Randomness: only through the helpers, which draw sample b's noise from generators[b]
    // (a sample never depends on its batch) and let tests replay recorded draws.
    at::Tensor x = initial_noise(input);
    at::Tensor x0;
    const int64_t steps = schedule.size();
    for (int64_t t = steps - 1; t >= 0; --t) {
      const at::Tensor tt = at::full({x.size(0)}, t, at::kLong);
      // One network forward, counted in out.evals (what `copaint run` reports per sample).
      const at::Tensor eps = predict_eps(model, schedule, x, tt, input.y, out.evals);
      const double ab = schedule.alphas_cumprod[t];
      const double ab_prev = t > 0 ? schedule.alphas_cumprod[t - 1] : 1.0;
      x0 = ((x - std::sqrt(1 - ab) * eps) / std::sqrt(ab)).clamp(-1, 1);
      if (params_.paste_x0) x0 = known + (1 - mask) * x0;
      x = std::sqrt(ab_prev) * x0 + std::sqrt(1 - ab_prev) * eps;  // deterministic DDIM
      if (input.on_step) input.on_step(steps - t, steps);
    }
    out.sample = known + (1 - mask) * x;  // the known region is exact in the result
    return out;
  }

  // For `copaint run --dry-run`: one forward per respaced step of the model's process.
  int64_t expected_forwards(int64_t train_steps) const override {
    return DiffusionSchedule::linear(train_steps).respaced(params_.respacing).size();
  }

 private:
  ExampleParams params_;
};

/// Registers `example` (its name, one line of help, every option with default and help, and a
/// factory from resolved options). Built-ins are registered in methods/register_methods.cpp.
inline void register_example_method(Registry<Method>& registry) {
  registry.add({"example",
                "Example: DDIM with the known pixels pasted into each x0 prediction "
                "(methods/examples)",
                option_specs(example_fields(), ExampleParams{}),
                [](const Options& o) -> std::unique_ptr<Method> {
                  return std::make_unique<ExampleMethod>(ExampleParams::from_options(o));
                }});
}

}  // namespace copaint
