// Free-form masks in the style of LaMa's random mask generator (saicinpainting MixedMaskGenerator
// with its random_thin_256 / random_thick_256 configs), which produced RePaint's `thin` and
// `thick` mask sets (the paper's `narrow` and `wide`). Our stand-ins when those PNGs are absent:
// same sampling scheme and parameters, our own random stream and rasteriser.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace copaint {

/// Parameters in pixels at `reference_size`; lengths and widths scale with min(H,W)/reference_size.
struct StrokeMaskParams {
  int64_t min_times = 4;    ///< strokes per mask: uniform in [min_times, max_times + 1]
  int64_t max_times = 50;   ///<   (LaMa's ramp at its end point adds one to max_times)
  int64_t max_width = 10;   ///< brush width 5 + U{0..max_width-1} pixels
  int64_t max_len = 40;     ///< segment length 10 + U{0..max_len-1} pixels, 1-5 segments per stroke
  int64_t max_angle = 4;    ///< segment direction 0.01 + U{0..max_angle-1} radians (mirrored on
                            ///<   every other stroke)
  double box_proba = 0;     ///< weight of a rectangles-only mask against strokes (weight 1)
  int64_t box_margin = 10;  ///< rectangles keep this far from the border
  int64_t box_min_size = 30;   ///< rectangle sides U{box_min_size..box_max_size} ...
  int64_t box_max_size = 150;  ///<   (clipped to the image minus margins)
  int64_t box_min_times = 1;   ///< rectangles per mask: U{box_min_times..box_max_times}
  int64_t box_max_times = 3;
  double max_hole_fraction = 0.5;  ///< masks with a larger hole are redrawn (LaMa max_tamper_area)
  int64_t reference_size = 256;    ///< size the pixel parameters refer to
};

/// LaMa's random_thin_256: 4-51 strokes of width 5-14, no rectangles.
StrokeMaskParams thin_stroke_params();
/// LaMa's random_thick_256: 1-6 strokes of width 5-104, or (probability 0.3/1.3) 1-3 rectangles.
StrokeMaskParams thick_stroke_params();

/// A [1,H,W] float mask, 1 = known, 0 = under a stroke/rectangle; deterministic in
/// (size, image_index, seed, params).
at::Tensor stroke_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                       const StrokeMaskParams& params);

}  // namespace copaint
