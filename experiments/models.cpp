// Registration of the model presets (checkpoint-backed UNets and test doubles).
#include "framework/model.h"
#include "framework/registry.h"

namespace copaint {

void register_builtin_models() {
  (void)Registry<Denoiser>::global();
}

}  // namespace copaint
