// Image and mask files <-> tensors (OpenCV): [C,H,W] float images in [-1,1] in RGB order,
// [1,H,W] masks with 1 = known pixel, and the resize rule that fits an image to a model.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace cv {
class Mat;
}

namespace copaint {

/// Decoded pixels (width x height, as a file's header declares) above which reading an image or
/// mask needs --allow-large.
inline constexpr int64_t kMaxImagePixelsWithoutAllowLarge = int64_t{1} << 26;  // 8192 x 8192

/// Reads an image file (any format OpenCV decodes: PNG, JPEG, BMP, ...) as a [C,H,W] float
/// tensor in [-1,1] (pixel / 127.5 - 1), channels in RGB order. `channels` is 1 (grayscale,
/// converted with OpenCV's luma weights) or 3 (a grayscale file is replicated); an alpha channel
/// is dropped. `size` > 0 fits the image to size x size with resize_center_crop (area
/// interpolation when shrinking, bicubic when enlarging); 0 keeps the file's size.
/// Throws InputError naming the file when it is missing, unreadable or not a decodable image,
/// or when its header (PNG, JPEG, BMP) declares more than kMaxImagePixelsWithoutAllowLarge pixels
/// and --allow-large is not given (checked before decoding: a small file may declare a huge
/// image). read_mask does the same.
at::Tensor read_image(const std::string& path, int64_t channels, int64_t size = 0);

/// Reads a mask file as a [1,H,W] float tensor: a pixel is known (1) when its grayscale value is
/// non-zero, or, with `invert`, when it is zero (for masks drawn white = hole). `size` > 0: the
/// mask must be size x size, else InputError naming both sizes; with `resize` it is instead
/// fitted with resize_center_crop (nearest neighbour) before thresholding. 0 keeps its size.
at::Tensor read_mask(const std::string& path, int64_t size = 0, bool invert = false,
                     bool resize = false);

/// The fitting rule of read_image: scales [C,H,W] (float) so that its shorter side is `size`,
/// then crops the centre size x size (an odd excess drops one more row/column at the end).
/// Returns the input unchanged when it already is size x size. `nearest` selects
/// nearest-neighbour interpolation (masks); otherwise area (shrinking) or bicubic (enlarging,
/// clamped to the input's range).
at::Tensor resize_center_crop(const at::Tensor& image, int64_t size, bool nearest = false);

/// Writes a [C,H,W] tensor in [-1,1] (C = 1 or 3, RGB; values clamped, then rounded to 8 bits)
/// to an image file whose format follows the extension (PNG for .png, which is lossless).
/// Throws UsageError for a bad shape, InputError naming the file when it cannot be written.
/// The file is written atomically (framework/core/atomic_file.h): never left truncated or empty.
void write_image(const std::string& path, const at::Tensor& image);

/// Encodes an 8-bit OpenCV image (BGR order) by the extension of `path` and writes it
/// atomically; InputError naming the file (and the system's reason) when it cannot be written.
void write_image_file(const std::string& path, const cv::Mat& bgr);

/// Writes a [1,H,W] mask (1 = known) as an 8-bit grayscale image: known white, unknown black.
void write_mask(const std::string& path, const at::Tensor& mask);

}  // namespace copaint
