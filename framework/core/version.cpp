// Build identity strings (definitions injected by CMake for this file only).
#include "framework/core/version.h"

#include <torch/version.h>

namespace copaint {

std::string version() { return COPAINT_VERSION; }
std::string git_revision() { return COPAINT_GIT_REVISION; }
std::string torch_version() { return TORCH_VERSION; }

}  // namespace copaint
