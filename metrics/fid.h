// Distribution metrics over Inception pool3 features: FID as pytorch-fid computes it (float64
// mean and covariance, ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2)) and KID as
// torch-fidelity defines it (cubic polynomial kernel, unbiased MMD^2 over random subsets), and the
// FidMetric / KidMetric that the harness runs through the SetMetric interface.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "metrics/inception.h"
#include "metrics/set_metric.h"

namespace copaint {

/// tr sqrt(S1 S2) for symmetric positive semi-definite S1, S2 [D,D] (float64), through the
/// symmetric form sqrt(S1) S2 sqrt(S1), whose eigenvalues are those of S1 S2 (real, >= 0) and
/// which stays symmetric in floating point: eigenvalues at rounding level (below D eps max, or
/// negative) are taken as 0. Always finite and real, where the square root of the non-symmetric
/// product (scipy's sqrtm in pytorch-fid) can return complex parts or NaN when S1 S2 is
/// near-singular. Two D x D eigendecompositions (D = 2048: tens of seconds on one core).
double trace_sqrt_product(const at::Tensor& sigma1, const at::Tensor& sigma2);
/// The same from the centred, scaled features A [N,D], B [M,D] (S1 = A^T A, S2 = B^T B): the sum
/// of the singular values of A B^T [N,M] (the non-zero eigenvalues of S1 S2 are those of
/// (A B^T)(A B^T)^T). A factor with more rows than D is first reduced to the R of its QR
/// decomposition. No square roots of rounding noise, so accurate for any rank, and only
/// min(N,D) x min(M,D) singular values: cheap for the 100-image protocol.
double trace_sqrt_product_factors(const at::Tensor& a, const at::Tensor& b);

/// pytorch-fid's calculate_frechet_distance(mu1, sigma1, mu2, sigma2) with trace_sqrt_product.
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);
/// FID of feature sets [N,D] and [M,D] (N, M >= 2): float64 means and covariances (ddof 1, as
/// np.cov), the trace term by trace_sqrt_product_factors.
double frechet_distance_of_features(const at::Tensor& features1, const at::Tensor& features2);

/// numpy.random.RandomState(seed)'s draws of rng.choice(n, k, replace=False) (MT19937 seeded as
/// numpy's legacy seeding, permutation by Fisher-Yates from the top with masked rejection), so that
/// KID draws the subsets torch-fidelity draws with the same seed.
class NumpyLegacySubsets {
 public:
  explicit NumpyLegacySubsets(uint32_t seed) : mt_(seed) {}
  /// k distinct indices in [0, n), k <= n < 2^32.
  std::vector<int64_t> choice(int64_t n, int64_t k);

 private:
  uint64_t interval(uint64_t max);
  std::mt19937 mt_;
};

struct KidParams {
  /// Samples per subset, capped at the smaller set. 50, not torch-fidelity's 1000: a 100-image
  /// cell then has subsets that differ, so the standard deviation means something; the mean is
  /// an unbiased MMD^2 estimate at any subset size.
  int64_t subset_size = 50;
  int64_t subsets = 100;  ///< torch-fidelity's kid_subsets
  uint32_t seed = 2020;   ///< torch-fidelity's rng_seed
};

struct KidResult {
  double mean = 0.0;
  double stddev = 0.0;  ///< over the subsets, ddof 0 (np.std)
  int64_t subset_size = 0;
};

/// Unbiased MMD^2 (torch-fidelity's mmd2, mmd_est="unbiased") of the polynomial kernel
/// k(x, y) = (x.y / D + 1)^3 between equally many features x [m,D] and y [m,D], m >= 2.
double kid_mmd2(const at::Tensor& x, const at::Tensor& y);
/// KID: kid_mmd2 over params.subsets pairs of subsets (sample subset, then reference subset, from
/// one NumpyLegacySubsets(seed), as torch-fidelity's kid_features_to_metric); mean and std.
KidResult kernel_inception_distance(const at::Tensor& features1, const at::Tensor& features2,
                                    const KidParams& params);
/// The same on the subsets given as index lists [i1, j1, i2, j2, ...] (tests with recorded draws).
KidResult kernel_inception_distance(const at::Tensor& features1, const at::Tensor& features2,
                                    const std::vector<std::vector<int64_t>>& subsets);

/// The FID Inception of a weights file, loaded once per process and path (fid and kid share it),
/// with the file's SHA-256.
struct SharedInception {
  std::shared_ptr<FidInception> network;
  std::string weights_sha256;
};
SharedInception load_shared_inception(const std::string& weights_file);

/// The pool3 features both metrics use; feature_key() "fid_inception_pool3:<weights sha256>".
class InceptionSetMetric : public SetMetric {
 public:
  explicit InceptionSetMetric(SharedInception inception) : inception_(std::move(inception)) {}
  std::string feature_key() const override;
  /// Runs on the images' device (the network follows it); [B,2048] float64 on the CPU.
  at::Tensor features(const at::Tensor& images) override;

 protected:
  bool stand_in() const { return inception_.network->stand_in(); }

 private:
  SharedInception inception_;
};

class FidMetric : public InceptionSetMetric {
 public:
  using InceptionSetMetric::InceptionSetMetric;
  /// "fid", or "fid_standin" on the formula stand-in weights (never presented as FID).
  std::string name() const override { return stand_in() ? "fid_standin" : "fid"; }
  bool higher_is_better() const override { return false; }
  /// NaN with a note for fewer than 2 samples or references; a note when either is below 2048.
  SetScore score(const at::Tensor& sample_features, const at::Tensor& reference_features) override;
};

class KidMetric : public InceptionSetMetric {
 public:
  KidMetric(SharedInception inception, KidParams params)
      : InceptionSetMetric(std::move(inception)), params_(params) {}
  /// "kid", or "kid_standin" on the formula stand-in weights.
  std::string name() const override { return stand_in() ? "kid_standin" : "kid"; }
  bool higher_is_better() const override { return false; }
  /// Mean and std over subsets; a note when the subset size was capped at the smaller set.
  SetScore score(const at::Tensor& sample_features, const at::Tensor& reference_features) override;

 private:
  KidParams params_;
};

}  // namespace copaint
