// Whether several result folders ran on the same inputs (`copaint report A B`): the input-set
// fingerprints of each (dataset, mask) compared across folders, and the first differing image.
#pragma once

#include <string>
#include <vector>

namespace copaint {

/// One line per (dataset, mask) whose input fingerprints differ between the first folder and
/// another: "inputs differ: fashion_mnist x half: A (sha256 ab..) vs B (sha256 cd..): image 3
/// ('00003.png'): pixels differ (sha256 .. vs ..)", naming the first image whose id, pixels or
/// mask differ among the stored samples' hashes (or the image counts when none does). `folders`
/// are the databases of each folder (find_result_dbs of each argument), `names` the arguments.
std::vector<std::string> input_differences(const std::vector<std::vector<std::string>>& folders,
                                           const std::vector<std::string>& names);

}  // namespace copaint
