// Aggregation of per-sample scores: mean/std/95% interval and best-of-samples per image.
#include "metrics/aggregate.h"

#include <cmath>
#include <limits>
#include <map>

#include "framework/core/error.h"

namespace copaint {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class Id>
std::vector<double> best_of(const std::vector<double>& scores, const std::vector<Id>& ids,
                            bool higher_is_better) {
  if (scores.size() != ids.size()) {
    throw InputError("best_per_image: " + std::to_string(scores.size()) + " scores but " +
                     std::to_string(ids.size()) + " image ids");
  }
  std::map<Id, size_t> slot;
  std::vector<double> best;
  for (size_t i = 0; i < scores.size(); ++i) {
    auto [it, inserted] = slot.emplace(ids[i], best.size());
    const double v = scores[i];
    if (inserted) {
      best.push_back(v);
      continue;
    }
    double& b = best[it->second];
    if (std::isnan(b) || (higher_is_better ? v > b : v < b)) b = v;
  }
  return best;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  double sum = 0.0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

}  // namespace

double student_t_975(int64_t dof) {
  static const double table[30] = {12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060,
                                   2.2622,  2.2281, 2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199,
                                   2.1098,  2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
                                   2.0595,  2.0555, 2.0518, 2.0484, 2.0452, 2.0423};
  if (dof < 1) return kNaN;
  if (dof <= 30) return table[dof - 1];
  // Cornish-Fisher expansion around the normal quantile (error < 1e-5 for dof > 30).
  const double z = 1.959963984540054, n = static_cast<double>(dof);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n);
}

Aggregate aggregate(const std::vector<double>& scores) {
  Aggregate a;
  a.count = static_cast<int64_t>(scores.size());
  a.mean = mean_of(scores);
  if (a.count < 2) {
    a.std = kNaN;
    a.ci95 = kNaN;
    return a;
  }
  double ss = 0.0;
  for (double x : scores) ss += (x - a.mean) * (x - a.mean);
  a.std = std::sqrt(ss / static_cast<double>(a.count - 1));
  a.ci95 = student_t_975(a.count - 1) * a.std / std::sqrt(static_cast<double>(a.count));
  return a;
}

std::vector<double> best_per_image(const std::vector<double>& scores,
                                   const std::vector<int64_t>& image_ids, bool higher_is_better) {
  return best_of(scores, image_ids, higher_is_better);
}

std::vector<double> best_per_image(const std::vector<double>& scores,
                                   const std::vector<std::string>& image_ids,
                                   bool higher_is_better) {
  return best_of(scores, image_ids, higher_is_better);
}

double best_mean(const std::vector<double>& scores, const std::vector<int64_t>& image_ids,
                 bool higher_is_better) {
  return mean_of(best_per_image(scores, image_ids, higher_is_better));
}

double best_mean(const std::vector<double>& scores, const std::vector<std::string>& image_ids,
                 bool higher_is_better) {
  return mean_of(best_per_image(scores, image_ids, higher_is_better));
}

}  // namespace copaint
