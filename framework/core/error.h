// Error types shared by every library: usage mistakes (exit code 2) and bad input data (exit code
// 1).
#pragma once

#include <stdexcept>
#include <string>

namespace copaint {

/// A mistake in how the program was called: unknown name, unknown option key, bad value.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Bad input data: missing or corrupt file, wrong tensor shape, mask of the wrong size.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace copaint
