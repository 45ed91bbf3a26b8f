// Bit-exact 8-bit resampling as the reference's Python stack does it: Pillow's Image.resize
// (box / bilinear / bicubic, 22-bit fixed point, horizontal then vertical pass), guided-diffusion's
// center_crop_arr, Pillow's RGB->L conversion, and OpenCV's cv::resize(INTER_CUBIC) on 8-bit
// single-channel images (used by the reference for the text mask at sizes other than 256).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace copaint {

enum class PilFilter { kNearest, kBox, kBilinear, kBicubic };

/// Pillow's `Image.resize((out_w, out_h), filter)` on a uint8 [H,W,C] image (C = 1..4 bands, each
/// resampled alike). Returns a uint8 [out_h,out_w,C] tensor; a same-size resize is a copy, as in
/// Pillow. Throws UsageError for a non-uint8 or non-3-d input or a non-positive size.
at::Tensor pil_resize(const at::Tensor& image, int64_t out_h, int64_t out_w, PilFilter filter);

/// guided-diffusion's / RePaint's `center_crop_arr`: box-downscale by halves while the short side
/// is
/// >= 2*size, bicubic-resize so the short side is `size` (sides rounded half-to-even, as Python's
/// round), then take the centre size x size crop. uint8 [H,W,C] in, uint8 [size,size,C] out.
at::Tensor center_crop_arr(const at::Tensor& image, int64_t size);

/// Pillow's `convert("L")` of a uint8 [H,W,3] RGB image (ITU-R 601-2 luma, 16-bit fixed point):
/// uint8 [H,W,1]. [H,W,1] passes through; [H,W,4] drops alpha first.
at::Tensor pil_to_gray(const at::Tensor& image);

/// OpenCV's `cv::resize(src, (out_w, out_h), interpolation=INTER_CUBIC)` on a uint8 [H,W] image,
/// following OpenCV 4's generic code path (A = -0.75, 11-bit fixed-point coefficients, replicated
/// border; the vertical pass in float with round-half-even over the first multiple of `simd_lanes`
/// columns, as its SIMD kernel does, integer round-half-up on the rest). OpenCV builds that route
/// 8-bit cubic resizing through Intel IPP may differ on pixels whose exact value is a rounding tie.
at::Tensor opencv_resize_cubic_u8(const at::Tensor& image, int64_t out_h, int64_t out_w,
                                  int64_t simd_lanes = 8);

}  // namespace copaint
