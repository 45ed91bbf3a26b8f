// Build identity: project version, git revision and LibTorch version.
#pragma once

#include <string>

namespace copaint {

std::string version();        ///< e.g. "0.1.0"
std::string git_revision();   ///< short hash at configure time, or "unknown"
std::string torch_version();  ///< LibTorch's version, e.g. "1.13.1"

}  // namespace copaint
