// Registration of the LibTorch-only built-in datasets (file-backed ones live in experiments/).
#include "datasets/dataset.h"

#include "framework/registry.h"

namespace copaint {

void register_builtin_datasets() {
  // File-backed datasets (image folders, CelebA-HQ, ImageNet subsets, the bundled set) need image
  // decoding and are registered by the I/O layer (experiments/); nothing LibTorch-only yet.
  (void)Registry<Dataset>::global();
}

}  // namespace copaint
