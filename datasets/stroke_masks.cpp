// LaMa-style stroke and rectangle masks: sampling as in LaMa's generator, drawing by our own
// round-capped thick-segment rasteriser (a pixel is covered when its centre lies within half the
// brush width of the segment, which approximates cv2.line's thick lines).
#include "datasets/stroke_masks.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "framework/core/error.h"

namespace copaint {
namespace {

// splitmix64: a small, portable, seedable stream (identical on every platform and libtorch).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform integer in [lo, hi), like numpy's randint(lo, hi).
  int64_t randint(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo));
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t state_;
};

// One independent stream per (seed, image index, mask kind).
uint64_t stream_seed(uint64_t seed, int64_t image_index, uint64_t salt) {
  Rng r(seed ^ (salt * 0xD1B54A32D192ED03ULL));
  return r.next() + static_cast<uint64_t>(image_index) * 0xA0761D6478BD642FULL;
}

void draw_segment(float* hole, int64_t h, int64_t w, double x0, double y0, double x1, double y1,
                  double brush) {
  const double r = brush / 2.0;
  const int64_t xa = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(x0, x1) - r)));
  const int64_t xb =
      std::min<int64_t>(w - 1, static_cast<int64_t>(std::ceil(std::max(x0, x1) + r)));
  const int64_t ya = std::max<int64_t>(0, static_cast<int64_t>(std::floor(std::min(y0, y1) - r)));
  const int64_t yb =
      std::min<int64_t>(h - 1, static_cast<int64_t>(std::ceil(std::max(y0, y1) + r)));
  const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
  for (int64_t y = ya; y <= yb; ++y) {
    for (int64_t x = xa; x <= xb; ++x) {
      double t = len2 > 0 ? ((x - x0) * dx + (y - y0) * dy) / len2 : 0.0;
      t = std::clamp(t, 0.0, 1.0);
      const double ex = x - (x0 + t * dx), ey = y - (y0 + t * dy);
      if (ex * ex + ey * ey <= r * r) hole[y * w + x] = 1.f;
    }
  }
}

void draw_strokes(Rng& rng, float* hole, int64_t h, int64_t w, const StrokeMaskParams& p,
                  double k) {
  const int64_t times = rng.randint(p.min_times, p.max_times + 2);
  for (int64_t i = 0; i < times; ++i) {
    double sx = static_cast<double>(rng.randint(0, w));
    double sy = static_cast<double>(rng.randint(0, h));
    const int64_t segments = 1 + rng.randint(0, 5);
    for (int64_t j = 0; j < segments; ++j) {
      double angle = 0.01 + static_cast<double>(rng.randint(0, p.max_angle));
      if (i % 2 == 0) angle = 2 * M_PI - angle;
      const double length = (10 + rng.randint(0, p.max_len)) * k;
      const double brush = std::max(1.0, (5 + rng.randint(0, p.max_width)) * k);
      // LaMa truncates the end point to integers and clips it to [0, size].
      const double ex = std::clamp<double>(std::trunc(sx + length * std::sin(angle)), 0, w);
      const double ey = std::clamp<double>(std::trunc(sy + length * std::cos(angle)), 0, h);
      draw_segment(hole, h, w, sx, sy, ex, ey, brush);
      sx = ex;
      sy = ey;
    }
  }
}

void draw_boxes(Rng& rng, float* hole, int64_t h, int64_t w, const StrokeMaskParams& p, double k) {
  const int64_t margin = static_cast<int64_t>(std::lround(p.box_margin * k));
  const int64_t min_size = std::max<int64_t>(1, std::lround(p.box_min_size * k));
  const int64_t max_size = std::min(
      {static_cast<int64_t>(std::lround(p.box_max_size * k)) + 1, h - 2 * margin, w - 2 * margin});
  if (max_size <= min_size) return;
  const int64_t times = rng.randint(p.box_min_times, p.box_max_times + 1);
  for (int64_t i = 0; i < times; ++i) {
    const int64_t bw = rng.randint(min_size, max_size), bh = rng.randint(min_size, max_size);
    const int64_t x0 = rng.randint(margin, w - margin - bw + 1);
    const int64_t y0 = rng.randint(margin, h - margin - bh + 1);
    for (int64_t y = y0; y < y0 + bh; ++y)
      std::fill(hole + y * w + x0, hole + y * w + x0 + bw, 1.f);
  }
}

}  // namespace

StrokeMaskParams thin_stroke_params() { return StrokeMaskParams{}; }

StrokeMaskParams thick_stroke_params() {
  StrokeMaskParams p;
  p.min_times = 1;
  p.max_times = 5;
  p.max_width = 100;
  p.max_len = 200;
  p.box_proba = 0.3;
  return p;
}

at::Tensor stroke_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                       const StrokeMaskParams& p) {
  if (height <= 0 || width <= 0) throw UsageError("stroke mask needs a positive size");
  if (p.min_times < 0 || p.max_times < p.min_times || p.max_width < 1 || p.max_len < 1 ||
      p.max_angle < 1 || p.box_proba < 0 || p.reference_size <= 0) {
    throw UsageError("stroke mask: inconsistent parameters");
  }
  const double k = static_cast<double>(std::min(height, width)) / p.reference_size;
  Rng rng(stream_seed(seed, image_index, 0x5752));
  auto hole = at::zeros({height, width}, at::kFloat);
  float* data = hole.data_ptr<float>();
  // Redraw while the hole is too large (LaMa drops such masks); bounded, the last one is kept.
  for (int attempt = 0; attempt < 100; ++attempt) {
    hole.zero_();
    const bool boxes = p.box_proba > 0 && rng.uniform() * (1.0 + p.box_proba) >= 1.0;
    if (boxes) {
      draw_boxes(rng, data, height, width, p, k);
    } else {
      draw_strokes(rng, data, height, width, p, k);
    }
    if (hole.mean().item<double>() <= p.max_hole_fraction) break;
  }
  return (1 - hole).unsqueeze(0);
}

}  // namespace copaint
