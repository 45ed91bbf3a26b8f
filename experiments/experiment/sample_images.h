// What one stored sample writes to HDF5: its reference image and mask (once per path) and the
// sample itself, each with the attributes that make the file self-describing. Shared by `run`
// and `score`.
#pragma once

#include <ATen/core/Tensor.h>

#include "experiments/experiment/experiment.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "experiments/store/stored_images.h"

namespace copaint {

/// Writes the datasets named by `record` (reference_path, mask_path, sample_path): the reference
/// [C,H,W] and mask [1,H,W] only when not readable already (absent or half written earlier), the
/// sample always; a reference or mask whose pixels differ from record.image_sha256 /
/// mask_sha256 (the input changed under the same index) is rewritten. Each gets the attribute
/// `sha256` (framework/core/input_hash.h). `image_id` and `generator_seed` go into the attributes
/// (-1: none, e.g. an imported method's prediction). With `float_sample` the sample is also stored
/// as float32 at float_sample_path(record.sample_path), named by its attribute `float_path`.
void store_sample_images(ResultsH5& h5, const ExperimentCell& cell, const SampleRecord& record,
                         const at::Tensor& reference, const at::Tensor& mask,
                         const at::Tensor& sample, int64_t generator_seed,
                         bool float_sample = false);

}  // namespace copaint
