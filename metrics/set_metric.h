// The interface of a metric over a whole set of samples (FID, KID): per-image features, then one
// score per cell from the samples' features against the reference images' features.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace copaint {

/// One score of a set: value, its standard deviation where the metric has one (KID over subsets;
/// NaN otherwise), the number of samples and of references it used, and a note for the report
/// (e.g. "n < 2048: FID is biased upwards"), empty when there is nothing to say.
struct SetScore {
  double value = 0.0;
  double stddev = 0.0;
  int64_t n_samples = 0;
  int64_t n_references = 0;
  std::string note;
};

/// A distribution metric. Features are computed per image (in batches, on any device), cached by
/// the harness under feature_key(), and reduced by score() once a cell is complete. Listed and
/// chosen with the per-sample metrics (`metrics=lpips,fid,kid`); names never collide with theirs.
class SetMetric {
 public:
  static constexpr const char* kRegistryKind = "metric";
  virtual ~SetMetric() = default;
  /// Name in result rows, e.g. "fid", "kid".
  virtual std::string name() const = 0;
  virtual bool higher_is_better() const = 0;
  /// What the features depend on (network name and its weights' SHA-256): two metrics with the
  /// same key share features, and a cache made under another key is never used.
  virtual std::string feature_key() const = 0;
  /// [B, D] float64 features (on the CPU) of images [B, C, H, W] in [-1, 1] (C = 1 or 3).
  virtual at::Tensor features(const at::Tensor& images) = 0;
  /// The score of sample features [N, D] against reference features [M, D] (float64, CPU).
  virtual SetScore score(const at::Tensor& sample_features,
                         const at::Tensor& reference_features) = 0;
};

}  // namespace copaint
