// The reference's analytic masks (half, line, sr2, expand) plus seeded random and box masks.
// All are [1,H,W] float, 1 = known pixel.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace copaint {

at::Tensor half_mask(int64_t height, int64_t width);  ///< right half unknown
at::Tensor line_mask(int64_t height, int64_t width);  ///< even rows unknown, odd rows known
at::Tensor sr2_mask(int64_t height, int64_t width);  ///< one known pixel (odd row, odd col) per 2x2
at::Tensor expand_mask(int64_t height, int64_t width);  ///< only a centre square of side H/4 known
/// Each pixel known with probability `known_fraction`, seeded by (seed, image_index).
at::Tensor random_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                       double known_fraction);
/// One unknown rectangle covering about `hole_fraction` of the image, seeded by (seed,
/// image_index).
at::Tensor box_mask(int64_t height, int64_t width, int64_t image_index, uint64_t seed,
                    double hole_fraction);

}  // namespace copaint
