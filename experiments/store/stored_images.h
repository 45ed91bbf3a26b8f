// The attributes of the HDF5 groups stored samples sit in (cell, references, masks, root) and
// the path of a sample's float copy: shared by the writers (experiment/sample_images.h) and merge.
#pragma once

#include <string>

#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"

namespace copaint {

/// Attributes of the groups the sample's images sit in: /samples/<cell key> (kind "cell" and the
/// cell: method, variant, settings, dataset, mask, model, seed), the reference's group (the
/// dataset and its settings) and the mask's (the mask, its settings and seed), and the root
/// (what the file holds). Also used by merge, whose copies carry only the datasets' attributes.
void describe_groups(ResultsH5& h5, const CellRecord& cell, const SampleRecord& record);

/// "/samples/<key>/<i>_<s>" -> "/samples_float/<key>/<i>_<s>".
std::string float_sample_path(const std::string& sample_path);

}  // namespace copaint
