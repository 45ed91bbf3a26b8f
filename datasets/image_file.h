// Image files for the file-backed datasets and masks: a decoder hook (the datasets library has no
// image codecs; the copaint tool installs its OpenCV decoder, tests may install their own) and
// the reference's image-file listing.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace copaint {

/// Decodes an image file to a uint8 [H,W,channels] tensor (channels 1 = grey, 3 = RGB), without
/// resizing. Throws InputError naming the file when it is missing, unreadable or corrupt.
using ImageFileReader = std::function<at::Tensor(const std::string& path, int64_t channels)>;

/// Installs the process-wide decoder (replacing any earlier one); an empty function removes it.
void set_image_file_reader(ImageFileReader reader);
bool has_image_file_reader();

/// Decodes through the installed reader and checks its result's shape and dtype. Throws
/// UsageError when no reader is installed (a LibTorch-only program without the I/O layer).
at::Tensor read_image_file(const std::string& path, int64_t channels);

/// The reference's image listing (RePaint's _list_image_files_recursively, then sorted): files
/// with extension jpg, jpeg, png or gif (any case) under `root`, recursively, as full paths sorted
/// by byte value. Throws InputError when `root` is missing or not a directory.
std::vector<std::string> list_image_files(const std::string& root);

}  // namespace copaint
