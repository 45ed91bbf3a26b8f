// A small reader for numpy's .npy format (versions 1-3): header parsing (descr, fortran_order,
// shape), bounds checks, and conversion to a C-ordered at::Tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace copaint {

/// One array read from a .npy file.
struct NpyArray {
  std::string descr;           ///< numpy dtype string as stored, e.g. "|u1", "<f4"
  std::vector<int64_t> shape;  ///< numpy shape (empty for a 0-d array)
  bool fortran_order = false;  ///< whether the file stored the data column-major
  at::Tensor data;             ///< the values, C-ordered, shaped `shape`, on the CPU
};

/// Parses a whole .npy file held in memory. `name` is used in error messages. Supported dtypes:
/// b1, u1, i1, i2, u2 (as int32), i4, u4 (as int64), i8, f2, f4, f8, either byte order.
/// Throws InputError for anything malformed, truncated or unsupported.
NpyArray parse_npy(const std::string& bytes, const std::string& name);

/// Reads and parses a .npy file; throws InputError naming the file when it is missing or bad.
NpyArray read_npy(const std::string& path);

}  // namespace copaint
