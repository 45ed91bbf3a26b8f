// Analytic and seeded masks, and their registration.
#include "datasets/masks.h"

#include <ATen/ATen.h>

#include <cmath>

#include "datasets/mask.h"
#include "datasets/mask_sets.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"

namespace copaint {
namespace {

void check_size(int64_t height, int64_t width, const char* name) {
  if (height <= 0 || width <= 0) {
    throw UsageError(std::string(name) + " mask needs a positive size, got " +
                     std::to_string(height) + "x" + std::to_string(width));
  }
}

uint64_t mix_seed(uint64_t seed, int64_t image_index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(image_index) + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFULL;
}

// A MaskGenerator from a plain function of (h, w, index, seed).
class FunctionMask : public MaskGenerator {
 public:
  using Fn = std::function<at::Tensor(int64_t, int64_t, int64_t, uint64_t)>;
  explicit FunctionMask(Fn fn) : fn_(std::move(fn)) {}
  at::Tensor make(int64_t h, int64_t w, int64_t index, uint64_t seed) const override {
    return fn_(h, w, index, seed);
  }

 private:
  Fn fn_;
};

}  // namespace

at::Tensor half_mask(int64_t height, int64_t width) {
  check_size(height, width, "half");
  auto m = at::ones({1, height, width}, at::kFloat);
  m.narrow(2, width / 2, width - width / 2).zero_();
  return m;
}

at::Tensor line_mask(int64_t height, int64_t width) {
  check_size(height, width, "line");
  auto m = at::zeros({1, height, width}, at::kFloat);
  m.slice(1, 1, height, 2).fill_(1);
  return m;
}

at::Tensor sr2_mask(int64_t height, int64_t width) {
  check_size(height, width, "sr2");
  auto m = at::zeros({1, height, width}, at::kFloat);
  m.slice(1, 1, height, 2).slice(2, 1, width, 2).fill_(1);
  return m;
}

at::Tensor expand_mask(int64_t height, int64_t width) {
  check_size(height, width, "expand");
  // The reference centres a square of side (H/4 // 2)*2 on (H/2, H/2), using the height for both
  // axes.
  const int64_t center = height / 2;
  const int64_t half = (height / 4) / 2;
  auto m = at::zeros({1, height, width}, at::kFloat);
  const int64_t lo = std::max<int64_t>(0, center - half);
  const int64_t hi_r = std::min(height, center + half);
  const int64_t hi_c = std::min(width, center + half);
  if (hi_r > lo && hi_c > lo) m.slice(1, lo, hi_r).slice(2, lo, hi_c).fill_(1);
  return m;
}

at::Tensor random_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                       double known_fraction) {
  check_size(height, width, "random");
  if (!(known_fraction >= 0 && known_fraction <= 1)) {
    throw UsageError("random mask known_fraction must be in [0,1]");
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, image_index));
  auto u = at::rand({1, height, width}, gen, at::kFloat);
  return (u < known_fraction).to(at::kFloat);
}

at::Tensor box_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                    double hole_fraction) {
  check_size(height, width, "box");
  if (!(hole_fraction > 0 && hole_fraction < 1)) {
    throw UsageError("box mask hole_fraction must be in (0,1)");
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, image_index));
  auto r = at::rand({3}, gen, at::kDouble);
  // Aspect ratio in [0.5, 2], area = hole_fraction of the image.
  const double aspect = std::pow(2.0, r[0].item<double>() * 2 - 1);
  const double area = hole_fraction * height * width;
  const int64_t bh = std::clamp<int64_t>(std::llround(std::sqrt(area / aspect)), 1, height);
  const int64_t bw = std::clamp<int64_t>(std::llround(std::sqrt(area * aspect)), 1, width);
  const int64_t top = static_cast<int64_t>(r[1].item<double>() * (height - bh + 1));
  const int64_t left = static_cast<int64_t>(r[2].item<double>() * (width - bw + 1));
  auto m = at::ones({1, height, width}, at::kFloat);
  m.slice(1, top, top + bh).slice(2, left, left + bw).zero_();
  return m;
}

void register_builtin_masks() {
  auto& reg = Registry<MaskGenerator>::global();
  auto fixed = [](at::Tensor (*fn)(int64_t, int64_t)) {
    return [fn](const Options&) {
      return std::make_unique<FunctionMask>(
          [fn](int64_t h, int64_t w, int64_t, uint64_t) { return fn(h, w); });
    };
  };
  reg.add({"half", "right half unknown (the reference's `half`)", {}, fixed(half_mask)});
  reg.add({"line", "every other row unknown (the reference's `line`)", {}, fixed(line_mask)});
  reg.add({"sr2", "one known pixel per 2x2 block, as in 2x super-resolution", {}, fixed(sr2_mask)});
  reg.add(
      {"expand", "only a centre square of side H/4 known (outpainting)", {}, fixed(expand_mask)});
  reg.add({"random",
           "each pixel known independently, seeded by (seed, image index)",
           {OptionSpec{"known_fraction", "0.5", "probability that a pixel is known"}
                .number()
                .at_least(0)
                .at_most(1)},
           [](const Options& o) {
             const double p = o.get_double("known_fraction");
             return std::make_unique<FunctionMask>(
                 [p](int64_t h, int64_t w, int64_t i, uint64_t s) {
                   return random_mask(h, w, i, s, p);
                 });
           }});
  reg.add(
      {"box",
       "one unknown rectangle, seeded by (seed, image index)",
       {OptionSpec{"hole_fraction", "0.25", "fraction of the image the rectangle covers"}
            .number()
            .above(0)
            .below(1)},
       [](const Options& o) {
         const double f = o.get_double("hole_fraction");
         return std::make_unique<FunctionMask>(
             [f](int64_t h, int64_t w, int64_t i, uint64_t s) { return box_mask(h, w, i, s, f); });
       }});
  register_file_masks();  // text, narrow, wide, file (datasets/mask_sets.cpp)
}

}  // namespace copaint
