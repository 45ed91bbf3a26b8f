// Connects the datasets library's file-backed datasets and masks to this layer's image decoding:
// installs an image-file reader built on read_image (experiments/imageio/image_io.h).
#pragma once

namespace copaint {

/// Installs the OpenCV-based decoder as the datasets library's image-file reader
/// (set_image_file_reader): uint8 [H,W,C] pixels exactly as decoded, RGB or grey. Idempotent;
/// called by register_all().
void install_image_file_reader();

}  // namespace copaint
