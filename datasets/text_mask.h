// The `text` mask: the reference's lorem-ipsum bitmap (a .npy file it ships, 256x256, 1 = known),
// resized to other sizes as the reference does (OpenCV cubic on the uint8 bitmap), or, without
// the file, lorem-ipsum text rendered by our own code with a built-in 5x7 bitmap font.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace copaint {

/// The reference's text mask from its bitmap (uint8/bool [H0,W0], 1 = known): `cv2.resize(...,
/// INTER_CUBIC)` to (height, width) when the size differs, as a [1,H,W] float mask.
at::Tensor text_mask_from_bitmap(const at::Tensor& bitmap, int64_t height, int64_t width);

/// text_mask_from_bitmap on the 2-d array of a .npy file; throws InputError naming the file when
/// it is missing, malformed or not 2-d.
at::Tensor text_mask_from_npy(const std::string& path, int64_t height, int64_t width);

/// Our stand-in: "Lorem ipsum dolor sit amet, ..." drawn in unknown (0) pixels on a known (1)
/// background, word-wrapped in lines of a built-in 5x7 font scaled by s = max(1, min(H,W)/80)
/// pixels per font pixel (bold: strokes widened by s/2), lines centred vertically. Independent of
/// image index and seed. Text covers 11.9% of a 256x256 mask, 12.9% at 512 (the reference's
/// bitmap: 14.0%). [1,H,W] float.
at::Tensor rendered_text_mask(int64_t height, int64_t width);

/// The font's glyph for `c` as 7 rows of 5 bits ('#' = ink), or nullptr when the font lacks it
/// (space is present and empty). Covers a-z, L, ',' and '.'.
const char* const* text_mask_glyph(char c);

}  // namespace copaint
