// FID and KID against pytorch-fid and torch-fidelity (tests/fixtures/fid/fid_kid.pt, made by
// generate_fid_fixtures.py on formula features), the matrix square root on rank-deficient
// covariances (100 samples in 2048-d), numpy's subset draws, and the registered fid / kid.
#include "metrics/fid.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "metrics/register_metrics.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const StateDict& fixture() {
  static const StateDict d =
      load_state_dict(std::string(COPAINT_TEST_FIXTURES_DIR) + "/fid/fid_kid.pt");
  return d;
}

at::Tensor entry(const std::string& name) {
  for (const auto& [key, value] : fixture()) {
    if (key == name) return value;
  }
  throw std::runtime_error("fid_kid.pt has no entry " + name);
}
double value(const std::string& name) { return entry(name).item<double>(); }

/// The generator's formula_features: non-negative, pool3-like, 2 u^2.
at::Tensor formula_features(const std::string& name, int64_t n, int64_t d) {
  return 2.0 * formula_uniform_tensor(name, {n, d}).pow(2);
}

double relative(double got, double expected) {
  return std::abs(got - expected) / std::abs(expected);
}

at::Tensor covariance(const at::Tensor& f) {
  const at::Tensor c = f - f.mean(0, true);
  return c.t().matmul(c) / double(f.size(0) - 1);
}

TEST(Fid, WellConditionedMatchesPytorchFid) {
  const at::Tensor a = formula_features("fid.well.a", 300, 16);
  const at::Tensor b = formula_features("fid.well.b", 250, 16) * 1.1;
  const double expected = value("well_fid");
  const double from_features = frechet_distance_of_features(a, b);
  const double from_stats = frechet_distance(a.mean(0), covariance(a), b.mean(0), covariance(b));
  std::cout << "well conditioned: pytorch-fid " << expected << ", relative error "
            << relative(from_features, expected) << " (features), "
            << relative(from_stats, expected) << " (statistics)\n";
  EXPECT_LT(relative(from_features, expected), 1e-4);
  EXPECT_LT(relative(from_stats, expected), 1e-4);
}

TEST(Fid, RankDeficientCovariancesGiveTheExactRealValue) {
  // 100 samples in 2048-d, as a 100-image cell: both covariances have rank 99, S1 S2 is singular.
  const at::Tensor a = formula_features("fid.ill.a", 100, 2048);
  const at::Tensor b = formula_features("fid.ill.b", 100, 2048) * 1.05;
  const double fid = frechet_distance_of_features(a, b);
  const double exact = value("ill_fid_exact");  // numpy's nuclear norm of A B^T
  const double pytorch_fid = value("ill_fid_pytorch_fid");
  std::cout << "rank deficient: ours " << fid << ", exact " << exact << ", pytorch-fid (scipy "
            << "sqrtm) " << pytorch_fid << "; relative to pytorch-fid "
            << relative(fid, pytorch_fid) << ", to exact " << relative(fid, exact)
            << "; scipy's sqrtm " << (value("ill_sqrtm_finite") > 0 ? "finite" : "NOT finite")
            << " with max |imag| " << value("ill_sqrtm_max_imag") << "\n";
  ASSERT_TRUE(std::isfinite(fid));
  EXPECT_LT(relative(fid, exact), 1e-9);
  EXPECT_LT(relative(fid, pytorch_fid), 1e-4);
}

TEST(Fid, SymmetricSquareRootIsRealWhereTheNaiveOneIsNot) {
  // 30 and 40 samples in 256-d: the naive route, eigenvalues of the non-symmetric S1 S2, has
  // imaginary parts and negative real parts (a complex square root, NaN in real arithmetic).
  const at::Tensor a = formula_features("fid.sym.a", 30, 256);
  const at::Tensor b = formula_features("fid.sym.b", 40, 256) * 1.05;
  const at::Tensor s1 = covariance(a), s2 = covariance(b);
  const at::Tensor naive = at::linalg_eigvals(s1.matmul(s2));
  const double max_imag = at::imag(naive).abs().max().item<double>();
  const double min_real = at::real(naive).min().item<double>();
  std::cout << "naive eigenvalues of S1 S2: max |imag| " << max_imag << ", min real " << min_real
            << "\n";
  EXPECT_TRUE(max_imag > 0.0 || min_real < 0.0);
  // The symmetric D x D form and the factor form are independent computations of the same value.
  const double symmetric = frechet_distance(a.mean(0), s1, b.mean(0), s2);
  const double factors = frechet_distance_of_features(a, b);
  ASSERT_TRUE(std::isfinite(symmetric));
  EXPECT_LT(relative(symmetric, factors), 1e-8) << symmetric << " vs " << factors;
  // More samples than dimensions: the factors are reduced by QR first.
  const at::Tensor c = formula_features("fid.sym.c", 400, 64);
  const at::Tensor d = formula_features("fid.sym.d", 300, 64) * 0.9;
  EXPECT_LT(relative(frechet_distance_of_features(c, d),
                     frechet_distance(c.mean(0), covariance(c), d.mean(0), covariance(d))),
            1e-10);
}

TEST(Fid, IdenticalAndTinySetsStayFinite) {
  // Three samples in 512-d (rank 2): FID of a set with itself is 0, not NaN or a negative number.
  const at::Tensor a = formula_features("fid.tiny", 3, 512);
  const double trace = covariance(a).trace().item<double>();
  EXPECT_LT(std::abs(frechet_distance_of_features(a, a)), 1e-10 * trace);
  EXPECT_LT(std::abs(frechet_distance(a.mean(0), covariance(a), a.mean(0), covariance(a))),
            1e-10 * trace);
  // The two forms of tr sqrt(S1 S2) agree on a singular product.
  const at::Tensor b = formula_features("fid.tiny.b", 5, 512);
  const at::Tensor ca = a - a.mean(0, true), cb = b - b.mean(0, true);
  const double factors = trace_sqrt_product_factors(ca, cb);
  EXPECT_NEAR(factors, trace_sqrt_product(ca.t().mm(ca), cb.t().mm(cb)), 1e-8 * factors);
}

TEST(FidSlow, SymmetricFormAt2048Dimensions) {
  // The D x D route on the 100-image case (two 2048 x 2048 eigendecompositions, about 30 s).
  const at::Tensor a = formula_features("fid.ill.a", 100, 2048);
  const at::Tensor b = formula_features("fid.ill.b", 100, 2048) * 1.05;
  const double symmetric = frechet_distance(a.mean(0), covariance(a), b.mean(0), covariance(b));
  std::cout << "2048-d symmetric form: " << symmetric << ", exact " << value("ill_fid_exact")
            << "\n";
  EXPECT_LT(relative(symmetric, value("ill_fid_exact")), 1e-6);
}

TEST(Kid, DrawsTheSubsetsNumpyDraws) {
  const at::Tensor recorded = entry("kid_indices");  // [20, 50]: sample, reference, sample, ...
  NumpyLegacySubsets draw(2020);
  for (int64_t s = 0; s < recorded.size(0); ++s) {
    const std::vector<int64_t> got = draw.choice(s % 2 == 0 ? 120 : 100, 50);
    const at::Tensor row = recorded[s].contiguous();
    ASSERT_EQ(got, std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 50))
        << "draw " << s;
  }
}

TEST(Kid, MatchesTorchFidelity) {
  const at::Tensor a = formula_features("kid.a", 120, 2048);
  const at::Tensor b = formula_features("kid.b", 100, 2048) * 1.05;
  KidParams p;
  p.subset_size = 50;
  p.subsets = 10;
  p.seed = 2020;
  const KidResult r = kernel_inception_distance(a, b, p);
  std::cout << "kid " << r.mean << " +- " << r.stddev << ", torch-fidelity " << value("kid_mean")
            << " +- " << value("kid_std") << "; relative error "
            << relative(r.mean, value("kid_mean")) << ", " << relative(r.stddev, value("kid_std"))
            << "\n";
  EXPECT_EQ(r.subset_size, 50);
  EXPECT_LT(relative(r.mean, value("kid_mean")), 1e-4);
  EXPECT_LT(relative(r.stddev, value("kid_std")), 1e-4);
}

TEST(SetMetrics, ScoresCarryCountsAndNotes) {
  SharedInception none;  // score() does not need the network
  FidMetric fid(none);
  const at::Tensor a = formula_features("set.a", 40, 64), b = formula_features("set.b", 30, 64);
  SetScore s = fid.score(a, b);
  EXPECT_EQ(s.n_samples, 40);
  EXPECT_EQ(s.n_references, 30);
  EXPECT_TRUE(std::isnan(s.stddev));
  EXPECT_NEAR(s.value, frechet_distance_of_features(a, b), 1e-12);
  EXPECT_NE(s.note.find("n < 64"), std::string::npos) << s.note;
  EXPECT_TRUE(std::isnan(fid.score(a.slice(0, 0, 1), b).value));
  EXPECT_FALSE(fid.higher_is_better());

  KidMetric kid(none, KidParams{});  // subset size 50 > 30 references: capped
  s = kid.score(a, b);
  EXPECT_EQ(s.n_references, 30);
  EXPECT_NE(s.note.find("capped at 30"), std::string::npos) << s.note;
  EXPECT_GE(s.stddev, 0.0);
  EXPECT_TRUE(std::isfinite(s.value));
  KidParams small;
  small.subset_size = 20;
  EXPECT_EQ(KidMetric(none, small).score(a, b).note, "");
}

TEST(SetMetrics, FidAndKidAreRegisteredWithTheirOptions) {
  register_builtin_set_metrics();
  register_builtin_set_metrics();  // idempotent
  auto& r = Registry<SetMetric>::global();
  ASSERT_TRUE(r.contains("fid"));
  ASSERT_TRUE(r.contains("kid"));
  const Options kid = r.resolve("kid", Options{});
  EXPECT_EQ(kid.get("subset_size"), "50");
  EXPECT_EQ(kid.get("subsets"), "100");
  EXPECT_EQ(kid.get("seed"), "2020");
  EXPECT_THROW(r.resolve("kid", Options{{"subset_size", "1"}}), UsageError);
  try {
    r.create("fid");
    ADD_FAILURE() << "fid without weights was created";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(kFidInceptionWeightsUrl), std::string::npos);
  }
  EXPECT_THROW(r.create("kid", Options{{"weights", "/nonexistent.pth"}}), InputError);
}

}  // namespace
}  // namespace copaint
