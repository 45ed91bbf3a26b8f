// The identity of an input: SHA-256 of an image's or a mask's decoded pixels, and the
// fingerprint of a whole input set. One definition for the resume check (experiments/experiment/
// runner.cpp), the stored rows (results_db.h) and the fingerprints `copaint report` prints.
//
// Bytes hashed (independent of file names and formats; a Python reader recomputes them from the
// HDF5 datasets with hashlib.sha256(array.tobytes())):
//   image: the uint8 [H,W,C] bytes of round((clamp(x, -1, 1) + 1) * 127.5) of the [C,H,W] tensor
//          in [-1,1] the model receives (after the dataset's resize/crop), row-major: exactly the
//          bytes of /references/<dataset key>/<i> in results.h5;
//   mask:  the uint8 [H,W] bytes of (m > 0.5) of the [1,H,W] mask, 1 = known pixel: the bytes of
//          /masks/<mask key>/<i>.
// Fingerprint of a (dataset, mask) input set: SHA-256 of the text with one line per image index
// i = 0, 1, ...: "<image sha256> <mask sha256>\n" ("unreadable" for an image that cannot be read).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace copaint {

/// [C,H,W] in [-1,1] -> uint8 [H,W,C] (clamped, round((x + 1) * 127.5)), on the CPU.
at::Tensor image_to_uint8(const at::Tensor& image);

/// uint8 [H,W,C] -> [C,H,W] float in [-1,1].
at::Tensor uint8_to_image(const at::Tensor& hwc);

/// SHA-256 (hex) of image_to_uint8(image)'s bytes.
std::string image_sha256(const at::Tensor& image);

/// SHA-256 (hex) of a [1,H,W] mask's bits as uint8 [H,W] (1 = known, m > 0.5).
std::string mask_sha256(const at::Tensor& mask);

/// SHA-256 (hex) of a uint8 tensor's bytes, row-major (what is stored in HDF5).
std::string uint8_sha256(const at::Tensor& bytes);

/// One line of an input set: an image's hash (empty = unreadable) and its mask's.
struct InputHash {
  std::string image;
  std::string mask;
};

/// The fingerprint of an input set, its items in image-index order (see the header comment).
std::string input_set_fingerprint(const std::vector<InputHash>& items);

}  // namespace copaint
