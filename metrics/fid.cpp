// FID (pytorch-fid's formula with a symmetric, always-real matrix square root), KID
// (torch-fidelity's unbiased polynomial-kernel MMD^2 over numpy-drawn subsets) and their
// SetMetric wrappers over the shared FID Inception.
#include "metrics/fid.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>

#include "framework/core/error.h"
#include "framework/core/sha256.h"

namespace copaint {
namespace {

/// Eigenvalues of a symmetric matrix, symmetrised first so that rounding in its product cannot
/// make eigvalsh read only one triangle of a slightly asymmetric matrix.
at::Tensor symmetric_eigenvalues(const at::Tensor& m) {
  return at::linalg_eigvalsh(0.5 * (m + m.transpose(0, 1)));
}

/// Eigenvalues with those below D * eps * max (rounding noise, or negative) set to 0.
at::Tensor above_rounding(const at::Tensor& eigenvalues) {
  const double top = eigenvalues.abs().max().item<double>();
  const double tol = double(eigenvalues.numel()) * std::numeric_limits<double>::epsilon() * top;
  return at::where(eigenvalues > tol, eigenvalues, at::zeros_like(eigenvalues));
}

at::Tensor as_double_matrix(const at::Tensor& t, const char* what) {
  if (t.dim() != 2) {
    throw InputError(std::string("fid: ") + what + " must be a matrix, got " +
                     std::to_string(t.dim()) + " dimensions");
  }
  return t.to(at::kCPU, at::kDouble);
}

/// Features centred on their mean and divided by sqrt(n - 1): S = A^T A is np.cov's covariance.
at::Tensor centred_scaled(const at::Tensor& f) {
  return (f - f.mean(0, /*keepdim=*/true)) / std::sqrt(double(f.size(0) - 1));
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

double trace_sqrt_product(const at::Tensor& sigma1, const at::Tensor& sigma2) {
  at::NoGradGuard no_grad;
  const at::Tensor s1 = as_double_matrix(sigma1, "sigma1");
  const at::Tensor s2 = as_double_matrix(sigma2, "sigma2");
  // sqrt(S1) = V diag(sqrt(l)) V^T; the eigenvalues of sqrt(S1) S2 sqrt(S1) are those of S1 S2
  // (similar matrices once S1 is invertible, and by continuity otherwise). Eigenvalues below
  // rounding level (D eps max) are zero: their square roots would add up to noise of order
  // D sqrt(eps) in a rank-deficient product.
  auto [l, v] = at::linalg_eigh(0.5 * (s1 + s1.transpose(0, 1)));
  const at::Tensor root = at::matmul(v * at::sqrt(above_rounding(l)).unsqueeze(0), v.t());
  const at::Tensor m = at::matmul(at::matmul(root, s2), root);
  return at::sqrt(above_rounding(symmetric_eigenvalues(m))).sum().item<double>();
}

double trace_sqrt_product_factors(const at::Tensor& a, const at::Tensor& b) {
  at::NoGradGuard no_grad;
  // A factor with more rows than columns is replaced by the R of its QR decomposition (A^T A =
  // R^T R), so the singular value decomposition is at most D x D.
  auto reduced = [](const at::Tensor& f) {
    return f.size(0) > f.size(1) ? std::get<1>(at::linalg_qr(f, "r")) : f;
  };
  const at::Tensor ra = reduced(as_double_matrix(a, "a"));
  const at::Tensor rb = reduced(as_double_matrix(b, "b"));
  return at::linalg_svdvals(at::matmul(ra, rb.t())).sum().item<double>();
}

double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2) {
  at::NoGradGuard no_grad;
  if (mu1.sizes() != mu2.sizes() || sigma1.sizes() != sigma2.sizes()) {
    throw InputError("fid: the two sets' statistics have different dimensions");
  }
  const at::Tensor diff = mu1.to(at::kDouble) - mu2.to(at::kDouble);
  return diff.dot(diff).item<double>() + sigma1.to(at::kDouble).trace().item<double>() +
         sigma2.to(at::kDouble).trace().item<double>() - 2.0 * trace_sqrt_product(sigma1, sigma2);
}

double frechet_distance_of_features(const at::Tensor& features1, const at::Tensor& features2) {
  at::NoGradGuard no_grad;
  const at::Tensor f1 = as_double_matrix(features1, "features1");
  const at::Tensor f2 = as_double_matrix(features2, "features2");
  if (f1.size(1) != f2.size(1) || f1.size(0) < 2 || f2.size(0) < 2) {
    throw InputError("fid: needs two feature sets [N>=2, D] of the same D");
  }
  const at::Tensor a = centred_scaled(f1);
  const at::Tensor b = centred_scaled(f2);
  const at::Tensor diff = f1.mean(0) - f2.mean(0);
  const double trace_sqrt = trace_sqrt_product_factors(a, b);
  return diff.dot(diff).item<double>() + a.pow(2).sum().item<double>() +
         b.pow(2).sum().item<double>() - 2.0 * trace_sqrt;
}

uint64_t NumpyLegacySubsets::interval(uint64_t max) {
  // numpy's random_interval: the smallest all-ones mask covering max, redraw until <= max.
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift : {1, 2, 4, 8, 16, 32}) mask |= mask >> shift;
  uint64_t value;
  do {
    value = static_cast<uint64_t>(mt_()) & mask;
  } while (value > max);
  return value;
}

std::vector<int64_t> NumpyLegacySubsets::choice(int64_t n, int64_t k) {
  if (k < 0 || k > n || n > int64_t(0xffffffff)) {
    throw InputError("kid: cannot draw " + std::to_string(k) + " of " + std::to_string(n));
  }
  // RandomState.choice(n, k, replace=False) = permutation(n)[:k]; permutation shuffles
  // arange(n) swapping x[i] and x[random_interval(i)] for i = n-1 .. 1.
  std::vector<int64_t> x(n);
  std::iota(x.begin(), x.end(), 0);
  for (int64_t i = n - 1; i >= 1; --i) std::swap(x[i], x[interval(uint64_t(i))]);
  x.resize(k);
  return x;
}

namespace {

/// torch-fidelity's kernel_poly with its defaults: (x.y * gamma + coef0)^degree, gamma = 1 / D.
at::Tensor cubic_kernel(const at::Tensor& p, const at::Tensor& q) {
  return (at::matmul(p, q.t()) / double(p.size(1)) + 1.0).pow(3);
}

/// torch-fidelity's mmd2(K_XX, K_XY, K_YY), mmd_est="unbiased": the diagonals of K_XX and K_YY
/// left out, K_XY's kept.
double unbiased_mmd2(const at::Tensor& kxx, const at::Tensor& kxy, const at::Tensor& kyy) {
  const int64_t m = kxx.size(0);
  const double off_diagonal = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()).item<double>();
  return off_diagonal / double(m * (m - 1)) - 2.0 * kxy.sum().item<double>() / double(m * m);
}

}  // namespace

double kid_mmd2(const at::Tensor& x, const at::Tensor& y) {
  at::NoGradGuard no_grad;
  const at::Tensor fx = as_double_matrix(x, "x"), fy = as_double_matrix(y, "y");
  if (fy.size(0) != fx.size(0) || fx.size(1) != fy.size(1) || fx.size(0) < 2) {
    throw InputError("kid: needs two feature sets [m>=2, D] of the same m and D");
  }
  return unbiased_mmd2(cubic_kernel(fx, fx), cubic_kernel(fx, fy), cubic_kernel(fy, fy));
}

KidResult kernel_inception_distance(const at::Tensor& features1, const at::Tensor& features2,
                                    const std::vector<std::vector<int64_t>>& subsets) {
  at::NoGradGuard no_grad;
  const at::Tensor f1 = as_double_matrix(features1, "features1");
  const at::Tensor f2 = as_double_matrix(features2, "features2");
  if (subsets.empty() || subsets.size() % 2 != 0 || f1.size(1) != f2.size(1)) {
    throw InputError("kid: subsets come in (sample, reference) pairs over features of one D");
  }
  // The kernels of all pairs once; each subset's kernels are their rows and columns (the same
  // dot products as computing them per subset, 100x fewer flops for 100 subsets).
  const at::Tensor k11 = cubic_kernel(f1, f1), k22 = cubic_kernel(f2, f2);
  const at::Tensor k12 = cubic_kernel(f1, f2);
  auto block = [](const at::Tensor& k, const at::Tensor& rows, const at::Tensor& cols) {
    return k.index_select(0, rows).index_select(1, cols);
  };
  std::vector<double> mmds;
  for (size_t s = 0; s < subsets.size(); s += 2) {
    const at::Tensor i = at::tensor(subsets[s], at::kLong);
    const at::Tensor j = at::tensor(subsets[s + 1], at::kLong);
    if (i.numel() != j.numel() || i.numel() < 2) {
      throw InputError("kid: a subset pair must have equal sizes >= 2");
    }
    mmds.push_back(unbiased_mmd2(block(k11, i, i), block(k12, i, j), block(k22, j, j)));
  }
  const double mean = std::accumulate(mmds.begin(), mmds.end(), 0.0) / double(mmds.size());
  double var = 0.0;
  for (double v : mmds) var += (v - mean) * (v - mean);
  return {mean, std::sqrt(var / double(mmds.size())), int64_t(subsets.front().size())};
}

KidResult kernel_inception_distance(const at::Tensor& features1, const at::Tensor& features2,
                                    const KidParams& params) {
  const int64_t n = features1.size(0), m = features2.size(0);
  const int64_t size = std::min({params.subset_size, n, m});
  if (size < 2 || params.subsets < 1) {
    throw InputError("kid: needs at least 2 samples and 2 references and one subset");
  }
  NumpyLegacySubsets draw(params.seed);
  std::vector<std::vector<int64_t>> subsets;
  for (int64_t s = 0; s < params.subsets; ++s) {
    subsets.push_back(draw.choice(n, size));
    subsets.push_back(draw.choice(m, size));
  }
  return kernel_inception_distance(features1, features2, subsets);
}

namespace {

std::string file_sha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("fid inception: cannot read weights file '" + path + "'");
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), std::streamsize(buffer.size()));
    hash.update(buffer.data(), size_t(in.gcount()));
  }
  return hash.hex();
}

}  // namespace

SharedInception load_shared_inception(const std::string& weights_file) {
  struct Loaded {
    std::weak_ptr<FidInception> network;
    std::string sha256;
  };
  static std::mutex mutex;
  static std::map<std::string, Loaded> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  Loaded& entry = loaded[weights_file];
  std::shared_ptr<FidInception> network = entry.network.lock();
  if (!network) {
    network = std::make_shared<FidInception>(weights_file);  // the missing-file error first
    entry.network = network;
    entry.sha256 = file_sha256(weights_file);
  }
  return {network, entry.sha256};
}

std::string InceptionSetMetric::feature_key() const {
  return "fid_inception_pool3:" + inception_.weights_sha256;
}

at::Tensor InceptionSetMetric::features(const at::Tensor& images) {
  if (inception_.network->device() != images.device()) inception_.network->to(images.device());
  return inception_.network->features(images).to(at::kCPU, at::kDouble);
}

SetScore FidMetric::score(const at::Tensor& sample_features, const at::Tensor& reference_features) {
  SetScore out;
  out.n_samples = sample_features.size(0);
  out.n_references = reference_features.size(0);
  out.stddev = kNaN;
  if (out.n_samples < 2 || out.n_references < 2) {
    out.value = kNaN;
    out.note = "FID needs at least 2 samples and 2 references";
    return out;
  }
  out.value = frechet_distance_of_features(sample_features, reference_features);
  const int64_t d = sample_features.size(1);
  if (std::min(out.n_samples, out.n_references) < d) {
    out.note = "n < " + std::to_string(d) + ": FID is biased upwards; compare only at equal n";
  }
  return out;
}

SetScore KidMetric::score(const at::Tensor& sample_features, const at::Tensor& reference_features) {
  SetScore out;
  out.n_samples = sample_features.size(0);
  out.n_references = reference_features.size(0);
  if (std::min(out.n_samples, out.n_references) < 2) {
    out.value = out.stddev = kNaN;
    out.note = "KID needs at least 2 samples and 2 references";
    return out;
  }
  const KidResult r = kernel_inception_distance(sample_features, reference_features, params_);
  out.value = r.mean;
  out.stddev = r.stddev;
  if (r.subset_size < params_.subset_size) {
    out.note = "KID subset size capped at " + std::to_string(r.subset_size) +
               " (kid.subset_size=" + std::to_string(params_.subset_size) + ")";
  }
  return out;
}

}  // namespace copaint
