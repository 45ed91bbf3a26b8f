// The verify command's arguments and output, shared by `copaint verify` and copaint_verify (the
// core-only executable the GPU check builds where OpenCV, Boost, HDF5 and SQLite are absent).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace copaint {

/// The command's help text (every option).
extern const char* const kVerifyHelp;

/// Runs `verify [options] [CASE.json ...]` on `device` (auto|cpu|cuda[:N]): no case = the shipped
/// recordings. Prints the table to `out`; returns 0 when every case passes, 1 otherwise, 2 for a
/// usage error (UsageError propagates to the caller's handler).
int run_verify(const std::vector<std::string>& args, const std::string& device, std::ostream& out);

}  // namespace copaint
