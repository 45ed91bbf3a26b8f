// Diffusion schedules: linear betas, respacing, DDIM / CoPaint-TT / RePaint timestep lists.
#include "framework/diffusion/schedule.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "framework/core/error.h"
#include "framework/core/options.h"

namespace copaint {
namespace {

/// numpy.linspace(start, stop, num) in float64: i * step + start, the last entry exactly stop.
std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = 0.0 * (stop - start) + start;
    return y;
  }
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) y[i] = static_cast<double>(i) * step + start;
  y[num - 1] = stop;
  return y;
}

/// Round half to even, as Python's round() and numpy's round() do.
int64_t round_half_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

/// A whole (optionally signed) decimal integer, like Python's int(); UsageError otherwise.
int64_t parse_int(const std::string& text, const std::string& what) {
  const std::string s = trim(text);
  if (s.empty()) throw UsageError(what + ": expected an integer, got '" + text + "'");
  size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (i == s.size()) throw UsageError(what + ": expected an integer, got '" + text + "'");
  for (size_t k = i; k < s.size(); ++k) {
    if (s[k] < '0' || s[k] > '9') {
      throw UsageError(what + ": expected an integer, got '" + text + "'");
    }
  }
  errno = 0;
  const long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) throw UsageError(what + ": integer out of range: '" + text + "'");
  return static_cast<int64_t>(v);
}

double parse_double(const std::string& text, const std::string& what) {
  const std::string s = trim(text);
  char* end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) {
    throw UsageError(what + ": expected a number, got '" + text + "'");
  }
  return v;
}

void require_positive(int64_t v, const char* name, const char* func) {
  if (v < 1) {
    throw UsageError(std::string(func) + ": " + name + " must be >= 1, got " + std::to_string(v));
  }
}

/// {0: n-1, len: n-1, 2 len: n-1, ...} for j < limit: how many times each jump point still jumps.
std::map<int64_t, int64_t> jump_points(int64_t limit, int64_t length, int64_t n) {
  std::map<int64_t, int64_t> jumps;
  for (int64_t j = 0; j < limit; j += length) jumps[j] = n - 1;
  return jumps;
}

/// True when jump point t still has travels left; consumes one.
bool take_jump(std::map<int64_t, int64_t>& jumps, int64_t t) {
  auto it = jumps.find(t);
  if (it == jumps.end() || it->second <= 0) return false;
  --it->second;
  return true;
}

}  // namespace

std::vector<double> linear_betas(int64_t num_timesteps) {
  require_positive(num_timesteps, "num_timesteps", "linear_betas");
  const double scale = 1000.0 / static_cast<double>(num_timesteps);
  return np_linspace(scale * 0.0001, scale * 0.02, num_timesteps);
}

std::vector<double> diffusers_betas(const std::string& beta_schedule, int64_t num_timesteps,
                                    double beta_start, double beta_end) {
  require_positive(num_timesteps, "num_train_timesteps", "beta_schedule");
  std::vector<double> betas;
  if (beta_schedule == "linear") {
    betas = np_linspace(beta_start, beta_end, num_timesteps);
  } else if (beta_schedule == "scaled_linear") {
    betas = np_linspace(std::sqrt(beta_start), std::sqrt(beta_end), num_timesteps);
    for (double& b : betas) b = static_cast<double>(static_cast<float>(b)) * static_cast<float>(b);
  } else if (beta_schedule == "squaredcos_cap_v2") {
    // diffusers' betas_for_alpha_bar (the improved-DDPM cosine schedule), in Python floats.
    const auto alpha_bar = [](double t) {
      const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
      return c * c;
    };
    const double n = static_cast<double>(num_timesteps);
    for (int64_t i = 0; i < num_timesteps; ++i) {
      const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
      betas.push_back(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
    }
  } else {
    throw UsageError("beta_schedule '" + beta_schedule +
                     "' is not supported (linear, scaled_linear, squaredcos_cap_v2)");
  }
  for (double& b : betas) b = static_cast<double>(static_cast<float>(b));  // torch float32
  return betas;
}

std::vector<int64_t> diffusers_timesteps(const std::string& spacing, int64_t num_timesteps,
                                         int64_t num_inference_steps, int64_t steps_offset) {
  const int64_t T = num_timesteps, N = num_inference_steps;
  require_positive(T, "num_train_timesteps", "diffusers_timesteps");
  if (N < 1 || N > T) {
    throw UsageError("timestep_spacing " + spacing + ": " + std::to_string(N) +
                     " inference steps outside [1, " + std::to_string(T) + "]");
  }
  std::vector<int64_t> steps;
  if (spacing == "leading") {
    for (int64_t i = N - 1; i >= 0; --i) steps.push_back(i * (T / N) + steps_offset);
  } else if (spacing == "trailing") {
    // np.round(np.arange(T, 0, -T / N)) - 1: the float stride summed as numpy's arange does.
    const double ratio = static_cast<double>(T) / static_cast<double>(N);
    const int64_t count = static_cast<int64_t>(std::ceil(static_cast<double>(T) / ratio));
    for (int64_t i = 0; i < count; ++i) {
      steps.push_back(round_half_even(static_cast<double>(T) - static_cast<double>(i) * ratio) - 1);
    }
  } else if (spacing == "linspace") {
    const std::vector<double> v = np_linspace(0.0, static_cast<double>(T - 1), N);
    for (auto it = v.rbegin(); it != v.rend(); ++it) steps.push_back(round_half_even(*it));
  } else {
    throw UsageError("timestep_spacing '" + spacing +
                     "' is not supported (leading, trailing, linspace)");
  }
  return steps;
}

std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& section_counts) {
  require_positive(num_timesteps, "num_timesteps", "space_timesteps");
  const std::string where = "timestep respacing '" + section_counts + "'";
  const std::string spec = trim(section_counts);

  for (const char* spacing : {"leading", "trailing", "linspace"}) {
    const std::string prefix = spacing;
    if (spec.rfind(prefix, 0) != 0) continue;
    const int64_t n = parse_int(spec.substr(prefix.size()), where);
    std::set<int64_t> kept;
    for (int64_t t : diffusers_timesteps(prefix, num_timesteps, n)) {
      if (t >= 0 && t < num_timesteps) kept.insert(t);
    }
    return {kept.begin(), kept.end()};
  }

  if (spec.rfind("ddim", 0) == 0) {
    const int64_t desired = parse_int(spec.substr(4), where);
    for (int64_t stride = 1; stride < num_timesteps; ++stride) {
      const int64_t count = (num_timesteps + stride - 1) / stride;  // len(range(0, T, stride))
      if (count == desired) {
        std::vector<int64_t> steps;
        for (int64_t t = 0; t < num_timesteps; t += stride) steps.push_back(t);
        return steps;
      }
    }
    throw UsageError(where + ": no DDIM stride of a " + std::to_string(num_timesteps) +
                     "-step process gives " + std::to_string(desired) + " steps");
  }

  std::vector<int64_t> counts;
  size_t begin = 0;
  while (true) {
    const size_t comma = spec.find(',', begin);
    counts.push_back(parse_int(spec.substr(begin, comma - begin), where));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  for (int64_t c : counts) {
    if (c < 0) throw UsageError(where + ": negative section count " + std::to_string(c));
  }

  std::set<int64_t> kept;
  const int64_t n_sections = static_cast<int64_t>(counts.size());
  if (n_sections == 1 && counts[0] > num_timesteps) {
    // The reference returns set(np.linspace(0, T, count)) (floats); a respaced process keeps
    // the steps i in [0, T) equal to one of them.
    for (double v : np_linspace(0.0, static_cast<double>(num_timesteps), counts[0])) {
      if (v < static_cast<double>(num_timesteps) && v == std::floor(v)) {
        kept.insert(static_cast<int64_t>(v));
      }
    }
    return {kept.begin(), kept.end()};
  }

  const int64_t size_per = num_timesteps / n_sections;
  const int64_t extra = num_timesteps % n_sections;
  int64_t start = 0;
  for (int64_t i = 0; i < n_sections; ++i) {
    const int64_t size = size_per + (i < extra ? 1 : 0);
    const int64_t count = counts[i];
    if (size < count) {
      throw UsageError(where + ": cannot divide a section of " + std::to_string(size) +
                       " steps into " + std::to_string(count));
    }
    const double frac_stride =
        count <= 1 ? 1.0 : static_cast<double>(size - 1) / static_cast<double>(count - 1);
    double cur = 0.0;
    for (int64_t k = 0; k < count; ++k) {
      kept.insert(start + round_half_even(cur));
      cur += frac_stride;
    }
    start += size;
  }
  if (kept.empty()) throw UsageError(where + ": keeps no timestep");
  return {kept.begin(), kept.end()};
}

double DiffusionSchedule::alpha_bar(int64_t t) const {
  if (t == -1) return 1.0;
  if (t < -1 || t >= size()) {
    throw UsageError("alpha_bar: timestep " + std::to_string(t) + " outside [-1, " +
                     std::to_string(size()) + ")");
  }
  return alphas_cumprod[static_cast<size_t>(t)];
}

double DiffusionSchedule::beta(int64_t t) const {
  if (t < 0 || t >= size()) {
    throw UsageError("beta: timestep " + std::to_string(t) + " outside [0, " +
                     std::to_string(size()) + ")");
  }
  return betas[static_cast<size_t>(t)];
}

DiffusionSchedule DiffusionSchedule::from_betas(std::vector<double> betas) {
  if (betas.empty()) throw UsageError("DiffusionSchedule: no betas");
  DiffusionSchedule s;
  s.alphas_cumprod.reserve(betas.size());
  s.timestep_map.reserve(betas.size());
  double prod = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    if (!(betas[i] > 0.0 && betas[i] <= 1.0)) {
      throw UsageError("DiffusionSchedule: beta[" + std::to_string(i) +
                       "] = " + std::to_string(betas[i]) + " is not in (0, 1]");
    }
    prod = i == 0 ? (1.0 - betas[i]) : prod * (1.0 - betas[i]);  // numpy cumprod, sequential
    s.alphas_cumprod.push_back(prod);
    s.timestep_map.push_back(static_cast<int64_t>(i));
  }
  s.betas = std::move(betas);
  return s;
}

DiffusionSchedule DiffusionSchedule::linear(int64_t num_timesteps) {
  return from_betas(linear_betas(num_timesteps));
}

DiffusionSchedule DiffusionSchedule::respaced(const std::string& section_counts) const {
  if (trim(section_counts).empty()) return *this;
  // space_timesteps follows the reference, which quietly keeps every step for a count above the
  // process's length; a run asking for more steps than the model has is a mistake.
  const std::string spec = trim(section_counts);
  if (spec.find(',') == std::string::npos && spec.rfind("ddim", 0) != 0 && !spec.empty() &&
      spec.find_first_not_of("0123456789") == std::string::npos && spec.size() < 10 &&
      std::stoll(spec) > size()) {
    throw UsageError("timestep respacing '" + spec + "' asks for more steps than the model's " +
                     std::to_string(size()) + "; use at most " + std::to_string(size()));
  }
  const std::vector<int64_t> use = space_timesteps(size(), section_counts);
  std::vector<double> new_betas;
  std::vector<int64_t> new_map;
  double last = 1.0;
  for (int64_t i : use) {
    const double ab = alphas_cumprod[static_cast<size_t>(i)];
    new_betas.push_back(1.0 - ab / last);
    last = ab;
    new_map.push_back(timestep_map[static_cast<size_t>(i)]);
  }
  DiffusionSchedule s = from_betas(std::move(new_betas));
  s.timestep_map = std::move(new_map);
  return s;
}

std::vector<int64_t> ddim_timesteps(int64_t num_inference_steps, int64_t num_train_steps,
                                    const std::string& schedule_type) {
  require_positive(num_inference_steps, "num_inference_steps", "ddim_timesteps");
  require_positive(num_train_steps, "num_train_steps", "ddim_timesteps");
  std::set<int64_t> steps;
  if (schedule_type == "linear") {
    const double ratio =
        static_cast<double>(num_train_steps) / static_cast<double>(num_inference_steps);
    for (int64_t i = 0; i < num_inference_steps; ++i) {
      steps.insert(static_cast<int32_t>(round_half_even(static_cast<double>(i) * ratio)));
    }
  } else if (schedule_type == "quad") {
    const double top = std::sqrt(static_cast<double>(num_train_steps) * 0.8);
    for (double v : np_linspace(0.0, top, num_inference_steps)) {
      steps.insert(static_cast<int64_t>(v * v));  // astype(int) truncates
    }
  } else {
    throw UsageError("ddim_timesteps: unknown schedule_type '" + schedule_type +
                     "' (linear, quad)");
  }
  return {steps.rbegin(), steps.rend()};
}

std::vector<int64_t> ddim_timetravel_timesteps(int64_t num_inference_steps, int64_t num_train_steps,
                                               int64_t jump_length, int64_t jump_n_sample,
                                               const std::string& time_travel_filter_type) {
  const char* fn = "ddim_timetravel_timesteps";
  require_positive(num_inference_steps, "num_inference_steps", fn);
  require_positive(num_train_steps, "num_train_steps", fn);
  require_positive(jump_length, "jump_length", fn);
  require_positive(jump_n_sample, "jump_n_sample", fn);
  const int64_t n = std::min(num_train_steps, num_inference_steps);
  const double max_t = static_cast<double>(num_train_steps);

  // Which jump points the filter drops (the reference's repaint_step_filter).
  const std::string& filter = time_travel_filter_type;
  const std::string where = std::string(fn) + ": time_travel_filter_type '" + filter + "'";
  auto arg = [&](size_t prefix_len) {
    if (filter.size() <= prefix_len || filter[prefix_len] != '-') {
      throw UsageError(where + ": expected <kind>-<number>");
    }
    return filter.substr(prefix_len + 1);
  };
  std::function<bool(int64_t)> skip;
  if (filter == "none") {
    skip = [](int64_t) { return false; };
  } else if (filter.rfind("firstp", 0) == 0) {
    const double percent = parse_double(arg(6), where);
    skip = [=](int64_t j) { return static_cast<double>(j) < max_t * (1.0 - percent / 100.0); };
  } else if (filter.rfind("lastp", 0) == 0) {
    const double percent = parse_double(arg(5), where);
    skip = [=](int64_t j) { return static_cast<double>(j) > max_t * percent / 100.0; };
  } else if (filter.rfind("firstn", 0) == 0) {
    const int64_t num = parse_int(arg(6), where);
    skip = [=](int64_t j) { return j < num_train_steps - num; };
  } else if (filter.rfind("lastn", 0) == 0) {
    const int64_t num = parse_int(arg(5), where);
    skip = [=](int64_t j) { return j > num; };
  } else {
    throw UsageError(where + ": unknown (none, firstp-P, lastp-P, firstn-N, lastn-N)");
  }

  std::map<int64_t, int64_t> jumps;
  for (int64_t j = 0; j < n - jump_length; j += jump_length) {
    if (!skip(j)) jumps[j] = jump_n_sample - 1;
  }
  std::vector<int64_t> steps;
  int64_t t = n;
  while (t >= 1) {
    --t;
    steps.push_back(t);
    if (take_jump(jumps, t)) {
      for (int64_t k = 0; k < jump_length; ++k) steps.push_back(++t);
    }
  }
  const int64_t factor = num_train_steps / n;
  for (int64_t& s : steps) s *= factor;
  return steps;
}

std::vector<int64_t> repaint_schedule_jump(int64_t t_T, int64_t n_sample, int64_t jump_length,
                                           int64_t jump_n_sample, int64_t jump2_length,
                                           int64_t jump2_n_sample, int64_t jump3_length,
                                           int64_t jump3_n_sample, int64_t start_resampling) {
  const char* fn = "repaint_schedule_jump";
  require_positive(t_T, "t_T", fn);
  require_positive(n_sample, "n_sample", fn);
  require_positive(jump_length, "jump_length", fn);
  require_positive(jump_n_sample, "jump_n_sample", fn);
  require_positive(jump2_length, "jump2_length", fn);
  require_positive(jump2_n_sample, "jump2_n_sample", fn);
  require_positive(jump3_length, "jump3_length", fn);
  require_positive(jump3_n_sample, "jump3_n_sample", fn);

  auto jumps = jump_points(t_T - jump_length, jump_length, jump_n_sample);
  auto jumps2 = jump_points(t_T - jump2_length, jump2_length, jump2_n_sample);
  auto jumps3 = jump_points(t_T - jump3_length, jump3_length, jump3_n_sample);

  std::vector<int64_t> ts;
  int64_t t = t_T;
  auto up = [&](int64_t length) {
    for (int64_t k = 0; k < length; ++k) ts.push_back(++t);
  };
  while (t >= 1) {
    ts.push_back(--t);
    if (t + 1 < t_T - 1 && t <= start_resampling) {
      for (int64_t k = 0; k < n_sample - 1; ++k) {
        ts.push_back(++t);
        if (t >= 0) ts.push_back(--t);
      }
    }
    if (t <= start_resampling - jump3_length && take_jump(jumps3, t)) {
      up(jump3_length);
    }
    if (t <= start_resampling - jump2_length && take_jump(jumps2, t)) {
      up(jump2_length);
      jumps3 = jump_points(t_T - jump3_length, jump3_length, jump3_n_sample);
    }
    if (t <= start_resampling - jump_length && take_jump(jumps, t)) {
      up(jump_length);
      jumps2 = jump_points(t_T - jump2_length, jump2_length, jump2_n_sample);
      jumps3 = jump_points(t_T - jump3_length, jump3_length, jump3_n_sample);
    }
  }
  ts.push_back(-1);

  // The reference's own checks (_check_times).
  const std::string bad = std::string(fn) + ": these settings give an invalid schedule: ";
  if (ts.size() < 2 || ts[0] <= ts[1]) throw UsageError(bad + "it does not start downwards");
  for (size_t i = 1; i < ts.size(); ++i) {
    if (std::abs(ts[i] - ts[i - 1]) != 1) throw UsageError(bad + "a move is not of one step");
  }
  for (int64_t v : ts) {
    if (v < -1 || v > t_T) throw UsageError(bad + "a step is outside [-1, t_T]");
  }
  return ts;
}

std::vector<int64_t> mid_interval_steps(int64_t t, int64_t interval_num) {
  if (t < 0) throw UsageError("mid_interval_steps: t must be >= 0, got " + std::to_string(t));
  require_positive(interval_num, "interval_num", "mid_interval_steps");
  const int64_t interval = t / interval_num;
  std::vector<int64_t> steps;
  for (int64_t i = interval_num - 1; i >= 0; --i) steps.push_back(i * interval);
  if (steps.front() != t) steps.insert(steps.begin(), t);
  if (steps.back() != 0) steps.push_back(0);
  return steps;
}

double smart_lr_decay_rate(const DiffusionSchedule& schedule, int64_t t, int64_t interval_num) {
  const std::vector<int64_t> steps = mid_interval_steps(t, interval_num);
  double rate = 1.0;
  for (size_t i = 0; i + 1 < steps.size(); ++i) {
    const double sqrt_recip = std::sqrt(1.0 / schedule.alpha_bar(steps[i]));
    rate *= sqrt_recip * std::sqrt(schedule.alpha_bar(steps[i + 1]));
  }
  return rate;
}

}  // namespace copaint
