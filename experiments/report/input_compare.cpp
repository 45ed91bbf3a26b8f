// Input fingerprints compared across result folders (`copaint report A B`).
#include "experiments/report/input_compare.h"

#include <map>
#include <tuple>
#include <utility>

#include "experiments/store/results_db.h"

namespace copaint {

namespace {

/// What one folder holds of an input set: its fingerprint and image count (the latest stored
/// by each database; the first database's wins), and each image's id and hashes from its
/// samples' rows.
struct FolderInputs {
  struct Image {
    std::string id, image_sha256, mask_sha256;
  };
  std::map<std::pair<std::string, std::string>, InputSetRecord> sets;  ///< (dataset, mask)
  std::map<std::tuple<std::string, std::string, int64_t>, Image> images;
};

FolderInputs read_folder(const std::vector<std::string>& dbs) {
  FolderInputs f;
  for (const auto& path : dbs) {
    ResultsDb db(path, false);
    for (const auto& set : db.input_sets())
      f.sets.emplace(std::make_pair(set.dataset, set.mask), set);
    std::map<int64_t, CellRecord> cells;
    for (const auto& c : db.cells()) cells[c.id] = c;
    for (const auto& s : db.samples()) {
      if (s.image_sha256.empty()) continue;  // stored before schema 3, or unreadable
      const CellRecord& c = cells.at(s.cell_id);
      f.images.emplace(std::make_tuple(c.dataset, c.mask, s.image_index),
                       FolderInputs::Image{s.image_id, s.image_sha256, s.mask_sha256});
    }
  }
  return f;
}

/// The first image of (dataset, mask) whose id or hashes differ between two folders.
std::string first_image_difference(const FolderInputs& a, const FolderInputs& b,
                                   const std::string& dataset, const std::string& mask,
                                   int64_t images) {
  for (int64_t i = 0; i < images; ++i) {
    auto x = a.images.find({dataset, mask, i});
    auto y = b.images.find({dataset, mask, i});
    if (x == a.images.end() || y == b.images.end()) continue;
    const std::string where = "image " + std::to_string(i) + " ('" + x->second.id + "')";
    if (x->second.id != y->second.id) return where + " is '" + y->second.id + "' in the other";
    if (x->second.image_sha256 != y->second.image_sha256)
      return where + ": pixels differ (sha256 " + x->second.image_sha256 + " vs " +
             y->second.image_sha256 + ")";
    if (x->second.mask_sha256 != y->second.mask_sha256)
      return where + ": mask differs (sha256 " + x->second.mask_sha256 + " vs " +
             y->second.mask_sha256 + ")";
  }
  return "";
}

}  // namespace

std::vector<std::string> input_differences(const std::vector<std::vector<std::string>>& folders,
                                           const std::vector<std::string>& names) {
  std::vector<std::string> out;
  if (folders.size() < 2) return out;
  const FolderInputs first = read_folder(folders[0]);
  for (size_t k = 1; k < folders.size(); ++k) {
    const FolderInputs other = read_folder(folders[k]);
    for (const auto& [key, a] : first.sets) {
      auto it = other.sets.find(key);
      if (it == other.sets.end() || it->second.fingerprint == a.fingerprint) continue;
      const InputSetRecord& b = it->second;
      std::string what =
          first_image_difference(first, other, key.first, key.second, std::min(a.images, b.images));
      if (what.empty() && a.images != b.images)
        what = std::to_string(a.images) + " vs " + std::to_string(b.images) + " images";
      if (what.empty()) what = "no stored sample shows which image (compare the folders' inputs)";
      out.push_back("inputs differ: " + key.first + " x " + key.second + ": " + names[0] +
                    " (sha256 " + a.fingerprint + ", " + std::to_string(a.images) + " images) vs " +
                    names[k] + " (sha256 " + b.fingerprint + ", " + std::to_string(b.images) +
                    " images): first difference: " + what);
    }
  }
  return out;
}

}  // namespace copaint
