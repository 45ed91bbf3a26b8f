// Registration of every built-in method in Registry<Method>::global().
#include "framework/core/registry.h"
#include "methods/copaint.h"
#include "methods/ddnm.h"
#include "methods/ddrm.h"
#include "methods/dps.h"
#include "methods/method.h"
#include "methods/repaint.h"
#include "methods/replacement.h"

namespace copaint {

void register_builtin_methods() {
  register_copaint_methods(Registry<Method>::global());
  register_replacement_methods(Registry<Method>::global());
  register_repaint_method(Registry<Method>::global());
  register_ddnm_method(Registry<Method>::global());
  register_ddrm_method(Registry<Method>::global());
  register_dps_method(Registry<Method>::global());
}

}  // namespace copaint
