// Reducing per-sample scores for reports: mean, standard deviation and 95% confidence interval,
// and the reference's "best" mean (the best of an image's samples, averaged over images).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace copaint {

/// Summary of a list of scores. Non-finite scores (e.g. +inf PSNR of an exact copy) are included
/// as they are, so they show up in the mean.
struct Aggregate {
  double mean = 0.0;  ///< arithmetic mean (NaN when empty)
  double std = 0.0;   ///< sample standard deviation, n - 1 in the denominator (NaN when n < 2)
  double ci95 = 0.0;  ///< half-width of the 95% interval of the mean, t(0.975, n-1) std / sqrt(n)
                      ///< (NaN when n < 2)
  int64_t count = 0;  ///< number of scores
};

Aggregate aggregate(const std::vector<double>& scores);

/// Two-sided 95% quantile of Student's t with `dof` degrees of freedom (dof >= 1).
double student_t_975(int64_t dof);

/// The best score of each image, in order of first appearance of its id: the highest when
/// `higher_is_better` (psnr, ssim), else the lowest (lpips, known_mse). NaN scores lose to any
/// number. Throws InputError when the two lists differ in length.
std::vector<double> best_per_image(const std::vector<double>& scores,
                                   const std::vector<int64_t>& image_ids, bool higher_is_better);
std::vector<double> best_per_image(const std::vector<double>& scores,
                                   const std::vector<std::string>& image_ids,
                                   bool higher_is_better);

/// Mean over images of best_per_image (the reference's best_mean / colmin_mean).
double best_mean(const std::vector<double>& scores, const std::vector<int64_t>& image_ids,
                 bool higher_is_better);
double best_mean(const std::vector<double>& scores, const std::vector<std::string>& image_ids,
                 bool higher_is_better);

}  // namespace copaint
