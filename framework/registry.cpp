// Helpers of the registry mechanism.
#include "framework/registry.h"

namespace copaint {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace copaint
