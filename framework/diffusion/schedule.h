// Diffusion schedules as pure functions: guided-diffusion's linear betas and timestep respacing,
// the DDIM and CoPaint-TT timestep lists of the reference sampler, and RePaint's jump schedule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace copaint {

/// guided-diffusion's "linear" beta schedule (with its `use_scale`): scale = 1000 / num_timesteps,
/// betas = linspace(scale * 1e-4, scale * 0.02, num_timesteps) computed like numpy's float64
/// linspace (i * step + start, last entry exactly the end). Throws UsageError if num_timesteps < 1.
std::vector<double> linear_betas(int64_t num_timesteps);

/// guided-diffusion's space_timesteps: which steps of a `num_timesteps` process to keep, sorted
/// ascending. `section_counts` is
/// - "ddimN": the DDIM paper's fixed stride, range(0, num_timesteps, i) for the smallest i with
///   exactly N entries (UsageError if no stride gives N);
/// - "c1,c2,...": the process cut into equal sections (the first num_timesteps % k one step
///   longer), section j strided to c_j steps: start + round(cur), cur += (size-1)/(c_j-1) summed
///   in double and rounded half to even (Python's round). UsageError when a section is shorter
///   than its count, a count is negative or not an integer, or nothing is kept;
/// - "leadingN", "trailingN", "linspaceN": the steps diffusers' DDIMScheduler visits with that
///   timestep_spacing (diffusers_timesteps, steps_offset 0), ascending; a respaced process over
///   them walks exactly diffusers' DDIM pairs when T is a multiple of N;
/// - a single count above num_timesteps: the reference returns the float set
///   linspace(0, num_timesteps, count), of which a respaced process keeps only the entries that
///   are exact integers below num_timesteps; those are returned (for most counts just {0}).
std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& section_counts);

/// diffusers' beta schedules (DDPMScheduler's and DDIMScheduler's `beta_schedule`), each value
/// rounded to float32 as diffusers stores them (then widened to double):
/// "linear": linspace(beta_start, beta_end, T); "scaled_linear": linspace(sqrt(beta_start),
/// sqrt(beta_end), T)^2; "squaredcos_cap_v2": betas_for_alpha_bar with the cosine alpha_bar
/// cos((t + 0.008) / 1.008 * pi / 2)^2 and max_beta 0.999 (beta_start/beta_end unused).
/// UsageError naming an unknown schedule or T < 1.
std::vector<double> diffusers_betas(const std::string& beta_schedule, int64_t num_timesteps,
                                    double beta_start, double beta_end);

/// The timesteps diffusers' DDIMScheduler.set_timesteps visits (of a T-step process), descending:
/// "leading": (arange(N) * (T // N)) reversed, plus steps_offset; "trailing":
/// round(arange(T, 0, -T / N)) - 1; "linspace": round(linspace(0, T - 1, N)) reversed (numpy's
/// round half to even). diffusers' DDIM pairs each t with prev_t = t - T // N (not necessarily the
/// next entry; negative prev_t means the final alpha). UsageError for an unknown spacing or
/// N outside [1, T].
std::vector<int64_t> diffusers_timesteps(const std::string& timestep_spacing, int64_t num_timesteps,
                                         int64_t num_inference_steps, int64_t steps_offset = 0);

/// A (possibly respaced) discrete diffusion process in double precision.
struct DiffusionSchedule {
  std::vector<double> betas;           ///< per respaced step
  std::vector<double> alphas_cumprod;  ///< per respaced step: cumprod(1 - betas), in order
  std::vector<int64_t> timestep_map;   ///< respaced index -> timestep of the original process
                                       ///< (what the model receives)

  int64_t size() const { return static_cast<int64_t>(betas.size()); }
  /// alphas_cumprod[t], with alpha_bar(-1) = 1 (the "previous" of step 0). UsageError outside
  /// [-1, size()).
  double alpha_bar(int64_t t) const;
  /// betas[t]; UsageError outside [0, size()).
  double beta(int64_t t) const;

  /// A process from its betas (alphas_cumprod = cumprod(1 - betas), identity timestep map).
  /// UsageError unless every beta is in (0, 1].
  static DiffusionSchedule from_betas(std::vector<double> betas);
  /// guided-diffusion's linear process (linear_betas).
  static DiffusionSchedule linear(int64_t num_timesteps = 1000);
  /// Respaced by guided-diffusion's rule ("250", "100", "ddim50", "10,15,20"; see
  /// space_timesteps): for each kept step i (ascending) the new beta is 1 - ab[i] / ab[last kept]
  /// (ab of the first "last" = 1), alphas_cumprod is recomputed as cumprod(1 - new betas) exactly
  /// as the reference's SpacedDiffusion does, and timestep_map composes with this one's. An empty
  /// string keeps every step (the reference's create_gaussian_diffusion default).
  DiffusionSchedule respaced(const std::string& section_counts) const;
};

/// The DDIM timestep list of the reference sampler (CoPaint's new_scheduler.ddim_timesteps):
/// respaced indices into a `num_train_steps`-step process (the respaced one: CelebA-HQ uses 250
/// inference steps over the 250-step respacing of the 1000-step model), strictly descending,
/// duplicates removed. "linear": round_half_even(i * num_train_steps / num_inference_steps) for
/// i = 0..N-1, reversed; "quad": int(linspace(0, sqrt(0.8 D), N)^2) (truncated). The list starts
/// near the top (e.g. 249, or 248 for 100 over 250) and ENDS AT 0: there is no -1. The sampler
/// walks the consecutive pairs (t, prev_t) = (list[k], list[k+1]): each is one DDIM step from
/// x_t to x_prev_t with alpha_bar[t] and alpha_bar[prev_t] (both real entries, prev_t >= 0), so
/// a list of N entries gives N-1 model steps, and the last one lands on x at respaced index 0,
/// which the reference clamps to [-1, 1] and returns as the sample.
/// UsageError if a count is < 1 or schedule_type is unknown.
std::vector<int64_t> ddim_timesteps(int64_t num_inference_steps, int64_t num_train_steps,
                                    const std::string& schedule_type = "linear");

/// The spacing of a DDIM step list (the `schedule_type` option of the DDIM methods).
enum class ScheduleType { kLinear, kQuad };
/// "linear" | "quad": the schedule_type text ddim_timesteps takes.
inline const char* schedule_type_name(ScheduleType type) {
  return type == ScheduleType::kQuad ? "quad" : "linear";
}

/// CoPaint-TT's list with time travel (CoPaint's new_scheduler.ddim_repaint_timesteps), respaced
/// indices. With N = min(num_inference_steps, num_train_steps): jump points j = 0, tau, 2 tau, ...
/// below N - tau (tau = jump_length) each get K-1 (K = jump_n_sample) travels back, except those
/// the filter drops; walking t from N down to 0, each visit of a jump point with travels left goes
/// back up tau steps one at a time. Every entry is then multiplied by num_train_steps / N in
/// INTEGER division (so 100 over 250 gives multiples of 2 up to 198, as the reference does).
/// The list starts at N-1 (scaled) and ends at 0, no -1. Consecutive pairs (t, prev_t): if
/// t > prev_t a DDIM step from t to prev_t (as in ddim_timesteps); if prev_t > t a time-travel
/// step that re-noises x_t to x_prev_t with betas[prev_t] (x = sqrt(1-beta) x + sqrt(beta) noise,
/// see diffusion.h undo_step); the reference asserts prev_t == t + 1 there, so travelling only
/// works when the scale factor is 1 (N == num_train_steps). jump_length = jump_n_sample = 1 gives
/// the plain list N-1, ..., 0.
/// `time_travel_filter_type` skips jump points j (in un-scaled steps; the reference compares them
/// to max_T = num_train_steps): "none"; "firstp-P": skip j < max_T (1 - P/100); "lastp-P": skip
/// j > max_T P/100; "firstn-N": skip j < max_T - N; "lastn-N": skip j > N. UsageError on an
/// unknown filter, counts < 1.
std::vector<int64_t> ddim_timetravel_timesteps(int64_t num_inference_steps, int64_t num_train_steps,
                                               int64_t jump_length, int64_t jump_n_sample,
                                               const std::string& time_travel_filter_type = "none");

/// RePaint's get_schedule_jump (the reference's guided_diffusion/scheduler.py), all knobs: the
/// list starts at t_T - 1, moves in steps of exactly 1 and ENDS AT -1 (every entry in [-1, t_T)).
/// Consecutive pairs (t_last, t_cur): t_cur = t_last - 1 is a DDPM reverse step at t_last
/// (the last pair (0, -1) produces the final x_0); t_cur = t_last + 1 re-noises one step forward
/// with betas[t_cur]. n_sample > 1 inserts that many up/down resampling moves at each step;
/// jump points every jump_length steps go back up jump_length steps jump_n_sample - 1 times
/// (jump2/jump3 nest finer jumps that reset after each coarser one); only at t <= start_resampling
/// (minus the jump length). UsageError when a length or count is < 1 or the result fails the
/// reference's own checks (first move downwards, steps of 1, range).
std::vector<int64_t> repaint_schedule_jump(int64_t t_T, int64_t n_sample, int64_t jump_length,
                                           int64_t jump_n_sample, int64_t jump2_length = 1,
                                           int64_t jump2_n_sample = 1, int64_t jump3_length = 1,
                                           int64_t jump3_n_sample = 1,
                                           int64_t start_resampling = 100000000);

/// The intermediate steps CoPaint's `mid_interval_num` (multi-hop x0 prediction, smart learning
/// rate) uses from respaced step t down to 0: interval = t / interval_num (integer division),
/// i * interval for i = interval_num-1, ..., 0, with t prepended when not already first and 0
/// appended when not already last. Non-increasing; pairs as in ddim_timesteps. Like the reference
/// it keeps repeats when interval is 0 (t = 1, interval_num = 2 gives {1, 0, 0}); interval_num = 1
/// gives {t, 0} ({0} for t = 0). UsageError if t < 0 or interval_num < 1.
std::vector<int64_t> mid_interval_steps(int64_t t, int64_t interval_num);

/// CoPaint's "smart" learning-rate decay divisor at respaced step t: the product over the pairs
/// (c, p) of mid_interval_steps(t, interval_num) of sqrt(1 / ab[c]) * sqrt(ab[p]), in double in
/// the reference's order (1 for t = 0).
double smart_lr_decay_rate(const DiffusionSchedule& schedule, int64_t t, int64_t interval_num);

}  // namespace copaint
