// One place that registers every built-in entry of every registry (survives static linking).
#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/app/cli.h"
#include "experiments/imageio/dataset_io.h"
#include "methods/method.h"
#include "metrics/metric.h"
#include "metrics/register_metrics.h"

namespace copaint {

void register_builtin_models();  // framework/nn/models.cpp

void register_all() {
  static bool done = false;
  if (done) return;
  done = true;
  register_builtin_methods();
  register_builtin_metrics();
  register_builtin_set_metrics();
  register_builtin_datasets();
  register_builtin_masks();
  install_image_file_reader();  // file-backed datasets and masks decode through OpenCV
  register_builtin_models();
}

}  // namespace copaint
