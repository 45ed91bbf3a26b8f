// Tests of framework/diffusion/schedule.h: every list and array of the reference's schedules.json,
// the timestep lists of the CoPaint fixtures, respacing rules, list properties and usage errors.
#include "framework/diffusion/schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "framework/core/error.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

const std::string kSchedules = std::string(COPAINT_TEST_FIXTURES_DIR) + "/schedule/schedules.json";
const std::string kCoPaintFixtures = std::string(COPAINT_TEST_FIXTURES_DIR) + "/copaint/";

bool exists(const std::string& path) { return std::ifstream(path).good(); }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

#define LOAD_SCHEDULES(var)                                                       \
  ASSERT_TRUE(exists(kSchedules)) << "committed fixture missing: " << kSchedules; \
  const nlohmann::json var = read_json(kSchedules)

/// "250_1_10_10" -> {250, 1, 10, 10}.
std::vector<int64_t> split_key(const std::string& key) {
  std::vector<int64_t> parts;
  std::stringstream ss(key);
  std::string item;
  while (std::getline(ss, item, '_')) parts.push_back(std::stoll(item));
  return parts;
}

void expect_close(const std::vector<double>& got, const nlohmann::json& want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i].get<double>()));
  }
  std::cout << "[ " << what << ": max abs error " << worst << " ]\n";
  EXPECT_LE(worst, tol) << what << ": max abs error " << worst;
}

std::vector<int64_t> ints(const nlohmann::json& j) { return j.get<std::vector<int64_t>>(); }

TEST(Schedule, LinearBetasMatchReference) {
  LOAD_SCHEDULES(fx);
  const std::vector<double> betas = linear_betas(1000);
  expect_close(betas, fx.at("linear_betas_1000"), 1e-12, "linear_betas_1000");
  const DiffusionSchedule s = DiffusionSchedule::linear(1000);
  EXPECT_EQ(s.betas, betas);
  ASSERT_EQ(s.size(), 1000);
  for (int64_t t = 0; t < s.size(); ++t) EXPECT_EQ(s.timestep_map[t], t);
}

TEST(Schedule, RespacedProcessesMatchReference) {
  LOAD_SCHEDULES(fx);
  const DiffusionSchedule base = DiffusionSchedule::linear(1000);
  for (const char* n : {"250", "100", "50"}) {
    const nlohmann::json& want = fx.at(std::string("respace_") + n);
    SCOPED_TRACE(n);
    EXPECT_EQ(space_timesteps(1000, n), ints(want.at("use_timesteps")));
    const DiffusionSchedule s = base.respaced(n);
    EXPECT_EQ(s.timestep_map, ints(want.at("timestep_map")));
    expect_close(s.betas, want.at("betas"), 1e-12, "betas");
    expect_close(s.alphas_cumprod, want.at("alphas_cumprod"), 1e-12, "alphas_cumprod");
  }
}

TEST(Schedule, DdimTimestepsMatchReference) {
  LOAD_SCHEDULES(fx);
  ASSERT_FALSE(fx.at("ddim_timesteps").empty());
  for (const auto& item : fx.at("ddim_timesteps").items()) {
    const std::vector<int64_t> k = split_key(item.key());
    ASSERT_EQ(k.size(), 2u) << item.key();
    EXPECT_EQ(ddim_timesteps(k[0], k[1]), ints(item.value())) << item.key();
  }
}

TEST(Schedule, TimeTravelTimestepsMatchReference) {
  LOAD_SCHEDULES(fx);
  ASSERT_FALSE(fx.at("ddim_timetravel_timesteps").empty());
  for (const auto& item : fx.at("ddim_timetravel_timesteps").items()) {
    const std::vector<int64_t> k = split_key(item.key());
    ASSERT_EQ(k.size(), 4u) << item.key();
    EXPECT_EQ(ddim_timetravel_timesteps(k[0], k[1], k[2], k[3]), ints(item.value())) << item.key();
  }
}

TEST(Schedule, RePaintJumpScheduleMatchesReference) {
  LOAD_SCHEDULES(fx);
  ASSERT_FALSE(fx.at("repaint_schedule_jump").empty());
  for (const auto& item : fx.at("repaint_schedule_jump").items()) {
    const std::vector<int64_t> k = split_key(item.key());
    ASSERT_EQ(k.size(), 4u) << item.key();
    EXPECT_EQ(repaint_schedule_jump(k[0], k[1], k[2], k[3]), ints(item.value())) << item.key();
  }
}

/// The timestep lists the reference sampler walked in the committed CoPaint fixtures.
TEST(Schedule, CoPaintFixtureStepListsMatch) {
  int checked = 0;
  for (const char* name :
       {"copaint_g2_n1", "copaint_g2_n2", "copaint_g5_plain", "copaint_fast_mid2",
        "copaint_ddim25_of50", "copaint_tt_j10", "copaint_backtrack", "copaint_sr2"}) {
    const std::string path = kCoPaintFixtures + name + ".json";
    SCOPED_TRACE(name);
    const nlohmann::json j = read_json(path);
    const nlohmann::json& p = j.at("config").at("ddim").at("schedule_params");
    const int64_t n = p.at("num_inference_steps"), d = p.at("ddpm_num_steps");
    std::vector<int64_t> steps;
    if (p.value("use_timetravel", false)) {
      steps = ddim_timetravel_timesteps(n, d, p.at("jump_length").get<int64_t>(),
                                        p.at("jump_n_sample").get<int64_t>(),
                                        p.value("time_travel_filter_type", std::string("none")));
    } else {
      steps = ddim_timesteps(n, d, p.value("schedule_type", std::string("linear")));
    }
    EXPECT_EQ(steps, ints(j.at("steps")));
    // The respaced process the steps index has ddpm_num_steps steps.
    const std::string respacing = j.at("config").at("timestep_respacing").get<std::string>();
    EXPECT_EQ(DiffusionSchedule::linear(1000).respaced(respacing).size(), d);
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

TEST(Schedule, DdimListsDescendToZero) {
  for (auto nd : std::vector<std::pair<int64_t, int64_t>>{
           {250, 250}, {100, 250}, {25, 250}, {50, 50}, {7, 1000}, {300, 250}, {1, 10}}) {
    const std::vector<int64_t> s = ddim_timesteps(nd.first, nd.second);
    SCOPED_TRACE(std::to_string(nd.first) + " over " + std::to_string(nd.second));
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.back(), 0);  // no -1: the last pair is (s[n-2], 0)
    EXPECT_LT(s.front(), nd.second);
    EXPECT_LE(static_cast<int64_t>(s.size()), std::min(nd.first, nd.second));
    for (size_t i = 1; i < s.size(); ++i) EXPECT_GT(s[i - 1], s[i]);
  }
  // N == D: every step of the process, once.
  EXPECT_EQ(ddim_timesteps(50, 50).size(), 50u);
  EXPECT_EQ(ddim_timesteps(50, 50).front(), 49);
  // quad: starts at 0 and ends at int(0.8 D), descending, deduplicated.
  const std::vector<int64_t> quad = ddim_timesteps(50, 1000, "quad");
  EXPECT_EQ(quad.back(), 0);
  EXPECT_TRUE(quad.front() == 799 || quad.front() == 800) << quad.front();  // sqrt(800)^2 rounded
  for (size_t i = 1; i < quad.size(); ++i) EXPECT_GT(quad[i - 1], quad[i]);
}

TEST(Schedule, TimeTravelListProperties) {
  // tau = K = 1: no travel, the plain DDIM list.
  EXPECT_EQ(ddim_timetravel_timesteps(250, 250, 1, 1), ddim_timesteps(250, 250));
  EXPECT_EQ(ddim_timetravel_timesteps(50, 50, 10, 1), ddim_timesteps(50, 50));
  for (auto k :
       std::vector<std::vector<int64_t>>{{250, 250, 10, 2}, {50, 50, 5, 3}, {50, 50, 10, 2}}) {
    const int64_t n = k[0], tau = k[2], K = k[3];
    const std::vector<int64_t> s = ddim_timetravel_timesteps(k[0], k[1], tau, K);
    EXPECT_EQ(s.front(), n - 1);
    EXPECT_EQ(s.back(), 0);
    int64_t down = 0, up = 0;
    for (size_t i = 1; i < s.size(); ++i) {
      ASSERT_EQ(std::abs(s[i] - s[i - 1]), 1);  // N == D: steps of one, as the sampler requires
      (s[i] < s[i - 1] ? down : up) += 1;
    }
    const int64_t jump_points = (n - tau + tau - 1) / tau;  // len(range(0, n - tau, tau))
    EXPECT_EQ(up, jump_points * (K - 1) * tau);
    EXPECT_EQ(down, n - 1 + up);
  }
  // N < D: every entry scaled by D / N in integer division.
  const std::vector<int64_t> scaled = ddim_timetravel_timesteps(100, 250, 10, 2);
  const std::vector<int64_t> unscaled = ddim_timetravel_timesteps(100, 100, 10, 2);
  ASSERT_EQ(scaled.size(), unscaled.size());
  for (size_t i = 0; i < scaled.size(); ++i) EXPECT_EQ(scaled[i], 2 * unscaled[i]);
  // More inference steps than process steps: clipped to the process.
  EXPECT_EQ(ddim_timetravel_timesteps(300, 250, 10, 2), ddim_timetravel_timesteps(250, 250, 10, 2));
}

TEST(Schedule, TimeTravelFilters) {
  const auto n_up = [](const std::vector<int64_t>& s) {
    int64_t up = 0;
    for (size_t i = 1; i < s.size(); ++i) up += s[i] > s[i - 1];
    return up;
  };
  const auto first_jump_top = [](const std::vector<int64_t>& s) {
    for (size_t i = 1; i < s.size(); ++i) {
      if (s[i] > s[i - 1]) return s[i - 1];
    }
    return int64_t{-1};
  };
  // Jump points 0, 10, ..., 80 of a 100-step list.
  const std::vector<int64_t> all = ddim_timetravel_timesteps(100, 100, 10, 2);
  EXPECT_EQ(n_up(all), 9 * 10);
  EXPECT_EQ(all, ddim_timetravel_timesteps(100, 100, 10, 2, "none"));
  // firstp-50: no travel at j < 50 (near T in the reverse sense: j counts from 0 upwards).
  const std::vector<int64_t> firstp = ddim_timetravel_timesteps(100, 100, 10, 2, "firstp-50");
  EXPECT_EQ(n_up(firstp), 4 * 10);  // 50, 60, 70, 80
  EXPECT_EQ(first_jump_top(firstp), 80);
  // lastp-50: no travel at j > 50.
  const std::vector<int64_t> lastp = ddim_timetravel_timesteps(100, 100, 10, 2, "lastp-50");
  EXPECT_EQ(n_up(lastp), 6 * 10);  // 0..50
  EXPECT_EQ(first_jump_top(lastp), 50);
  // firstn-30: no travel at j < 70; lastn-30: none at j > 30.
  EXPECT_EQ(n_up(ddim_timetravel_timesteps(100, 100, 10, 2, "firstn-30")), 2 * 10);
  EXPECT_EQ(n_up(ddim_timetravel_timesteps(100, 100, 10, 2, "lastn-30")), 4 * 10);
  EXPECT_THROW(ddim_timetravel_timesteps(100, 100, 10, 2, "middle"), UsageError);
  EXPECT_THROW(ddim_timetravel_timesteps(100, 100, 10, 2, "firstp"), UsageError);
  EXPECT_THROW(ddim_timetravel_timesteps(100, 100, 10, 2, "firstn-x"), UsageError);
}

TEST(Schedule, RePaintListProperties) {
  for (auto k : std::vector<std::vector<int64_t>>{
           {250, 1, 10, 10}, {50, 1, 5, 3}, {100, 2, 10, 3}, {60, 1, 10, 2}}) {
    const std::vector<int64_t> s = repaint_schedule_jump(k[0], k[1], k[2], k[3]);
    EXPECT_EQ(s.front(), k[0] - 1);
    EXPECT_EQ(s.back(), -1);
    for (size_t i = 1; i < s.size(); ++i) ASSERT_EQ(std::abs(s[i] - s[i - 1]), 1);
    for (int64_t t : s) {
      EXPECT_GE(t, -1);
      EXPECT_LT(t, k[0]);
    }
  }
  // No resampling, no jumps: T-1, ..., 0, -1.
  const std::vector<int64_t> plain = repaint_schedule_jump(20, 1, 1, 1);
  ASSERT_EQ(plain.size(), 21u);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(plain[i], 19 - static_cast<int64_t>(i));
  // Jumps count: (K-1) jump_length up moves per jump point 0, L, ..., below T - L.
  const std::vector<int64_t> s = repaint_schedule_jump(250, 1, 10, 10);
  int64_t up = 0;
  for (size_t i = 1; i < s.size(); ++i) up += s[i] > s[i - 1];
  EXPECT_EQ(up, 24 * 9 * 10);
  // start_resampling = 0: no jump can start (t <= 0 - L never holds).
  EXPECT_EQ(repaint_schedule_jump(20, 1, 5, 3, 1, 1, 1, 1, 0), plain);
  // The paper's CoPaint-TT and RePaint lists agree except for the trailing -1 when T == N.
  std::vector<int64_t> rp = repaint_schedule_jump(50, 1, 5, 3);
  rp.pop_back();
  EXPECT_EQ(rp, ddim_timetravel_timesteps(50, 50, 5, 3));
}

TEST(Schedule, SpaceTimestepsRules) {
  // "ddimN": range(0, T, stride) for the first stride with N entries.
  std::vector<int64_t> ddim = space_timesteps(1000, "ddim50");
  ASSERT_EQ(ddim.size(), 50u);
  for (size_t i = 0; i < ddim.size(); ++i) EXPECT_EQ(ddim[i], 20 * static_cast<int64_t>(i));
  ddim = space_timesteps(1000, "ddim3");  // ceil(1000 / 334) = 3
  EXPECT_EQ(ddim, (std::vector<int64_t>{0, 334, 668}));
  // Sections: each of 100 steps, strided to its count, first and last step of each kept.
  const std::vector<int64_t> sec = space_timesteps(300, "10,15,20");
  ASSERT_EQ(sec.size(), 45u);
  for (int64_t edge : {0, 99, 100, 199, 200, 299}) {
    EXPECT_TRUE(std::find(sec.begin(), sec.end(), edge) != sec.end()) << edge;
  }
  EXPECT_TRUE(std::is_sorted(sec.begin(), sec.end()));
  // Uneven sections: the first T % k are one step longer (4 + 3 + 3).
  EXPECT_EQ(space_timesteps(10, "2,2,2"), (std::vector<int64_t>{0, 3, 4, 6, 7, 9}));
  // Whole process; spaces around counts as Python's int() allows.
  const std::vector<int64_t> full = space_timesteps(250, " 250 ");
  ASSERT_EQ(full.size(), 250u);
  EXPECT_EQ(full.back(), 249);
  // A count of one keeps the section's first step; a zero count keeps none of it.
  EXPECT_EQ(space_timesteps(10, "1"), (std::vector<int64_t>{0}));
  EXPECT_EQ(space_timesteps(10, "0,2"), (std::vector<int64_t>{5, 9}));
  // Count above T: the integer points of linspace(0, T, count) below T.
  EXPECT_EQ(space_timesteps(10, "21"), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(space_timesteps(250, "1000"), (std::vector<int64_t>{0}));
}

TEST(Schedule, SpaceTimestepsErrors) {
  EXPECT_THROW(space_timesteps(100, "200,5"), UsageError);  // section of 50 into 200
  EXPECT_THROW(space_timesteps(10, "ddim7"), UsageError);   // no stride gives 7
  EXPECT_THROW(space_timesteps(1000, "ddim"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "ddimx"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "abc"), UsageError);
  EXPECT_THROW(space_timesteps(1000, ""), UsageError);
  EXPECT_THROW(space_timesteps(1000, "10,,5"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "2.5"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "-5"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "0"), UsageError);     // keeps nothing
  EXPECT_THROW(space_timesteps(3, "1,1,1,1"), UsageError);  // a section of 0 steps
  EXPECT_THROW(space_timesteps(0, "10"), UsageError);
  EXPECT_THROW(space_timesteps(1000, "99999999999999999999999"), UsageError);
  EXPECT_THROW(DiffusionSchedule::linear(1000).respaced("2000,1"), UsageError);
  // More respaced steps than the process has (the reference keeps all 1000 and says nothing).
  EXPECT_THROW(DiffusionSchedule::linear(1000).respaced("1001"), UsageError);
  EXPECT_EQ(DiffusionSchedule::linear(1000).respaced("1000").size(), 1000);
}

TEST(Schedule, CountErrors) {
  EXPECT_THROW(linear_betas(0), UsageError);
  EXPECT_THROW(ddim_timesteps(0, 250), UsageError);
  EXPECT_THROW(ddim_timesteps(10, 0), UsageError);
  EXPECT_THROW(ddim_timesteps(10, 250, "cosine"), UsageError);
  EXPECT_THROW(ddim_timetravel_timesteps(50, 50, 0, 2), UsageError);
  EXPECT_THROW(ddim_timetravel_timesteps(50, 50, 10, 0), UsageError);
  EXPECT_THROW(repaint_schedule_jump(0, 1, 10, 10), UsageError);
  EXPECT_THROW(repaint_schedule_jump(250, 0, 10, 10), UsageError);
  EXPECT_THROW(repaint_schedule_jump(250, 1, 0, 10), UsageError);
  EXPECT_THROW(repaint_schedule_jump(250, 1, 10, 10, 0), UsageError);
  EXPECT_THROW(DiffusionSchedule::from_betas({0.1, 0.0}), UsageError);
  EXPECT_THROW(DiffusionSchedule::from_betas({0.1, 1.5}), UsageError);
  EXPECT_THROW(DiffusionSchedule::from_betas({}), UsageError);
}

TEST(Schedule, DiffusionScheduleAccessors) {
  const DiffusionSchedule s = DiffusionSchedule::linear(1000);
  EXPECT_EQ(s.alpha_bar(-1), 1.0);
  EXPECT_EQ(s.alpha_bar(0), 1.0 - s.betas[0]);
  EXPECT_EQ(s.alpha_bar(999), s.alphas_cumprod[999]);
  EXPECT_THROW(s.alpha_bar(1000), UsageError);
  EXPECT_THROW(s.alpha_bar(-2), UsageError);
  EXPECT_THROW(s.beta(-1), UsageError);
  // alphas_cumprod is the running product of 1 - betas, strictly decreasing.
  for (int64_t t = 1; t < s.size(); ++t) {
    EXPECT_EQ(s.alphas_cumprod[t], s.alphas_cumprod[t - 1] * (1.0 - s.betas[t]));
    EXPECT_LT(s.alphas_cumprod[t], s.alphas_cumprod[t - 1]);
  }
  // Respacing keeps alpha_bar at the kept steps (up to rounding) and composes timestep maps.
  const DiffusionSchedule r = s.respaced("250");
  ASSERT_EQ(r.size(), 250);
  for (int64_t i = 0; i < r.size(); ++i) {
    EXPECT_NEAR(r.alphas_cumprod[i], s.alphas_cumprod[r.timestep_map[i]], 1e-13);
  }
  const DiffusionSchedule rr = r.respaced("50");
  ASSERT_EQ(rr.size(), 50);
  const std::vector<int64_t> inner = space_timesteps(250, "50");
  for (int64_t i = 0; i < rr.size(); ++i) {
    EXPECT_EQ(rr.timestep_map[i], r.timestep_map[inner[i]]);
    EXPECT_NEAR(rr.alphas_cumprod[i], s.alphas_cumprod[rr.timestep_map[i]], 1e-13);
  }
  // Empty respacing keeps the process.
  EXPECT_EQ(s.respaced("").betas, s.betas);
}

TEST(Schedule, MidIntervalStepsAndSmartLr) {
  EXPECT_EQ(mid_interval_steps(10, 1), (std::vector<int64_t>{10, 0}));
  EXPECT_EQ(mid_interval_steps(10, 2), (std::vector<int64_t>{10, 5, 0}));
  EXPECT_EQ(mid_interval_steps(11, 3), (std::vector<int64_t>{11, 6, 3, 0}));
  EXPECT_EQ(mid_interval_steps(1, 2), (std::vector<int64_t>{1, 0, 0}));  // as the reference
  EXPECT_EQ(mid_interval_steps(0, 1), (std::vector<int64_t>{0}));
  EXPECT_THROW(mid_interval_steps(-1, 1), UsageError);
  EXPECT_THROW(mid_interval_steps(5, 0), UsageError);

  const DiffusionSchedule s = DiffusionSchedule::linear(1000).respaced("50");
  EXPECT_EQ(smart_lr_decay_rate(s, 0, 1), 1.0);
  for (int64_t t : {1, 10, 25, 49}) {
    // Every interval count telescopes to sqrt(ab_0 / ab_t) (> 1: the step size shrinks).
    const double want = std::sqrt(s.alpha_bar(0) / s.alpha_bar(t));
    for (int64_t n : {1, 2, 3}) EXPECT_NEAR(smart_lr_decay_rate(s, t, n), want, 1e-12 * want);
    EXPECT_GT(smart_lr_decay_rate(s, t, 1), 1.0);
  }
}

}  // namespace
}  // namespace copaint
