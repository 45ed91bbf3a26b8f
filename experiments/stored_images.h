// What one stored sample writes to HDF5: its reference image and mask (once per path) and the
// sample itself, each with the attributes that make the file self-describing. Shared by `run`
// and `score`.
#pragma once

#include <ATen/core/Tensor.h>

#include "experiments/experiment.h"
#include "experiments/results_db.h"
#include "experiments/results_h5.h"

namespace copaint {

/// Writes the datasets named by `record` (reference_path, mask_path, sample_path): the reference
/// [C,H,W] and mask [1,H,W] only when not readable already (absent or half written earlier), the
/// sample always. `image_id` and `generator_seed` go into the attributes (-1: none, e.g. an
/// imported method's prediction). With `float_sample` the sample is also stored as float32 at
/// float_sample_path(record.sample_path), named by its attribute `float_path`.
void store_sample_images(ResultsH5& h5, const ExperimentCell& cell, const SampleRecord& record,
                         const at::Tensor& reference, const at::Tensor& mask,
                         const at::Tensor& sample, int64_t generator_seed,
                         bool float_sample = false);

/// Attributes of the groups the sample's images sit in: /samples/<cell key> (kind "cell" and the
/// cell: method, variant, settings, dataset, mask, model, seed), the reference's group (the
/// dataset and its settings) and the mask's (the mask, its settings and seed), and the root
/// (what the file holds). Also used by merge, whose copies carry only the datasets' attributes.
void describe_groups(ResultsH5& h5, const CellRecord& cell, const SampleRecord& record);

/// "/samples/<key>/<i>_<s>" -> "/samples_float/<key>/<i>_<s>".
std::string float_sample_path(const std::string& sample_path);

}  // namespace copaint
