// Registration of every built-in method in Registry<Method>::global().
#include "framework/registry.h"
#include "methods/method.h"

namespace copaint {

void register_builtin_methods() {
  (void)Registry<Method>::global();
}

}  // namespace copaint
