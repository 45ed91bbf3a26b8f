// The masks that come from files or stand in for them: `text` (the reference's lorem bitmap or our
// rendering), `narrow` / `wide` (RePaint's thin / thick PNG sets or LaMa-style stroke generators)
// and `file` (the user's own PNGs). Image files are decoded through read_image_file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace copaint {

/// A RePaint mask file as the reference loads it: decoded grey, Pillow-bicubic resized to
/// (height, width) when its size differs, divided by 255 (not thresholded; RePaint's masks are
/// 0/255, white = known). [1,H,W] float.
at::Tensor load_repaint_mask(const std::string& path, int64_t height, int64_t width);

/// A user mask file: known where the grey value is non-zero (zero with `invert`). A file of
/// another size is an InputError unless `resize`, which uses nearest-neighbour. [1,H,W] float.
at::Tensor load_user_mask(const std::string& path, int64_t height, int64_t width, bool invert,
                          bool resize);

/// Registers text, narrow, wide and file in Registry<MaskGenerator>::global() (called by
/// register_builtin_masks).
void register_file_masks();

}  // namespace copaint
