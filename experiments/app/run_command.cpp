// `copaint run EXPERIMENT.ini` and `copaint merge RESULTS_DIR`.
#include "experiments/app/run_command.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <thread>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/runner.h"
#include "experiments/experiment/set_scores.h"
#include "experiments/report/cell_views.h"
#include "experiments/store/merge.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/torch_compat.h"

namespace po = boost::program_options;

extern char** environ;

namespace copaint {
namespace {

po::options_description run_options() {
  po::options_description d(
      "usage: copaint run EXPERIMENT.ini [--config SITE.ini]... [--set k=v]... [--out DIR] "
      "[--dry-run] [--shard i/n | --jobs N|auto [--gpus i,j]] [--retry-failed] [--force] "
      "[--progress-every S] "
      "[global "
      "options]\n\nOptions");
  d.add_options()("help,h", "print this help")("out", po::value<std::string>(),
                                               "results folder (default results/<name>)")(
      "config", po::value<std::vector<std::string>>()->composing(),
      "an INI file layered over the experiment file (repeatable, in order; later wins; --set "
      "wins over all), e.g. a site's checkpoint and data paths")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "an experiment key=value (repeatable; wins over the file), e.g. --set samples=2 or "
      "--set copaint.G=1,2")(
      "dry-run", po::bool_switch(),
      "print the expanded grid and its cost in UNet evaluations, run nothing")(
      "shard", po::value<std::string>(),
      "i/n: run only work items (cell, image, sample) whose index % n == i, into "
      "results.shard-i-of-n.{sqlite,h5}")(
      "jobs", po::value<std::string>(),
      "N | auto: run as N worker processes on this machine, each a shard (--shard i/N) with 1/N "
      "of the threads, then merge them into DIR/results.{sqlite,h5}; faster on a CPU, where one "
      "process of a small model uses the cores poorly (rerun with the same N to resume); at most "
      "the machine's cores (more with --allow-large) and the grid's work items. On "
      "CUDA each worker gets its own GPU (CUDA_VISIBLE_DEVICES, round-robin over the visible "
      "GPUs or --gpus); auto = one worker per GPU (on the CPU: one process)")(
      "gpus", po::value<std::string>(),
      "i,j,...: the GPUs (visible indices, as in cuda:N) the --jobs workers are placed on, "
      "round-robin; without --jobs, one worker per GPU listed")(
      "retry-failed", po::bool_switch(), "rerun samples stored with status error")(
      "force", po::bool_switch(), "recompute samples already stored")(
      "float-samples", po::bool_switch(),
      "also store every sample as float32 (/samples_float/...): rescoring from the file then "
      "reproduces the stored scores exactly (uint8 alone: up to ~0.004 dB)")(
      "progress-every", po::value<double>()->default_value(60),
      "seconds between progress lines when stderr is not a terminal (SLURM logs); 0 = none")(
      "progress-lines", po::bool_switch(),
      "progress as those lines even on a terminal, with no bar (the workers of --jobs)");
  return d;
}

po::options_description run_testing_options() {
  po::options_description d("Testing options");
  d.add_options()("stop-after", po::value<int64_t>(),
                  "stop (as if interrupted) once this many samples are stored")(
      "crash-after", po::value<int64_t>(),
      "fault injection: exit with code 86 once this many samples are in HDF5 but before they "
      "are committed to SQLite");
  return d;
}

const char* kRunNotes =
    "\nThe experiment file is INI with dotted keys (experiments/*.ini; see "
    "experiments/README.md).\n"
    "A comma list in `dataset`, `methods`, `masks`, `seeds` or a method setting (copaint.G = "
    "1,2,5)\n"
    "is a grid axis; other values are literal (adm.channel_mult = 1,2,2).\n"
    "Settings: the experiment file, then each --config file in order, then --set (last wins);\n"
    "a key or section repeated within one file is an error. Every value is checked against its\n"
    "option's declared range (`copaint list` shows them) before any work; values above a sane\n"
    "bound (copaint.G or resample.particles > 1000, jump_n_sample > 100, image sides > 4096,\n"
    "samples > 10000) need the global --allow-large.\n"
    "Results: DIR/results.sqlite (SQLite, WAL) and DIR/results.h5 (uint8 images). A rerun skips\n"
    "stored samples (those with status error too, unless --retry-failed) whose input is unchanged\n"
    "(image id, SHA-256 of the decoded pixels and of the mask bits; others are recomputed) and\n"
    "scores metrics added since for them. A batch out of device memory is split and retried;\n"
    "out of memory at batch size 1 or a CUDA error stops the run (exit 1; a rerun resumes).\n"
    "Shards write their own files; combine them with `copaint merge DIR` (or report on DIR\n"
    "directly).\n"
    "SIGTERM/SIGINT stop after the batch in progress is stored (exit 128+signal; rerun resumes).\n";

/// `arg` quoted for a POSIX shell when it holds anything but [A-Za-z0-9_./=:,+-@%].
std::string shell_quote(const std::string& arg) {
  const bool plain = !arg.empty() && arg.find_first_not_of(
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_./=:,+-@%") == std::string::npos;
  if (plain) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// The command that resumes a stopped run: its own arguments without the testing flags and
/// --force (which would recompute what is stored).
std::string resume_command(const CommandContext& ctx) {
  std::string out = "copaint";
  if (ctx.device != "auto") out += " --device " + shell_quote(ctx.device);
  if (!ctx.precision.empty()) out += " --precision " + ctx.precision;
  out += " run";
  for (size_t i = 0; i < ctx.args.size(); ++i) {
    const std::string& a = ctx.args[i];
    const std::string name = a.substr(0, a.find('='));
    if (name == "--force") continue;
    if (name == "--stop-after" || name == "--crash-after") {
      if (a.find('=') == std::string::npos) ++i;
      continue;
    }
    out += " " + shell_quote(a);
  }
  return out;
}

/// A count given on the command line must be >= `minimum` (UsageError naming the flag).
void check_count(const po::variables_map& vm, const char* flag, int64_t minimum) {
  if (!vm.count(flag)) return;
  const int64_t v = vm[flag].as<int64_t>();
  if (v < minimum) {
    throw UsageError(std::string("run: --") + flag + " must be >= " + std::to_string(minimum) +
                     ", got " + std::to_string(v));
  }
}

// ---------------------------------------------------------------------------------------------
// --jobs N: worker processes, one shard each, then a merge.

volatile std::sig_atomic_t g_jobs_signal = 0;
extern "C" void on_jobs_signal(int sig) { g_jobs_signal = sig; }

}  // namespace

std::vector<std::string> place_workers(int64_t jobs, const std::string& device,
                                       const std::string& gpus, int visible_gpus,
                                       const std::string& visible_env) {
  const bool cuda =
      device == "cuda" || device.rfind("cuda:", 0) == 0 || (device == "auto" && visible_gpus > 0);
  if (!cuda) {
    if (!gpus.empty()) throw UsageError("run: --gpus needs a CUDA device (--device cuda)");
    return std::vector<std::string>(static_cast<size_t>(jobs));
  }
  std::vector<std::string> listed;  // visible indices
  std::string list = gpus.empty() && device.rfind("cuda:", 0) == 0 ? device.substr(5) : gpus;
  for (size_t at = 0; !list.empty() && at <= list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    listed.push_back(list.substr(at, comma - at));
    at = comma + 1;
  }
  if (list.empty())
    for (int i = 0; i < visible_gpus; ++i) listed.push_back(std::to_string(i));
  if (listed.empty()) throw UsageError("run --jobs: device " + device + " but no GPU is visible");
  std::vector<std::string> env_ids;  // what the visible indices are to CUDA_VISIBLE_DEVICES
  for (size_t at = 0; !visible_env.empty() && at <= visible_env.size();) {
    const size_t comma = std::min(visible_env.find(',', at), visible_env.size());
    env_ids.push_back(visible_env.substr(at, comma - at));
    at = comma + 1;
  }
  for (std::string& g : listed) {
    const bool digits = !g.empty() && g.size() < 5 && g.find_first_not_of("0123456789") == g.npos;
    if (!digits || std::stoi(g) >= visible_gpus) {
      throw UsageError("run: GPU '" + g + "' is not one of the " + std::to_string(visible_gpus) +
                       " visible GPU(s) (--gpus takes indices 0.." +
                       std::to_string(visible_gpus - 1) + ", as cuda:N)");
    }
    if (!env_ids.empty()) g = env_ids.at(static_cast<size_t>(std::stoi(g)));
  }
  std::vector<std::string> out;
  for (int64_t i = 0; i < jobs; ++i) out.push_back(listed[static_cast<size_t>(i) % listed.size()]);
  return out;
}

/// The command line of worker `index` of `jobs`: this process's global settings (threads split
/// between the workers; a worker placed on a GPU sees only that one, as `cuda`), its run
/// arguments without --jobs and --gpus, and the worker's shard.
std::vector<std::string> worker_argv(const CommandContext& ctx, int64_t index, int64_t jobs,
                                     const std::string& gpu) {
  const int threads = std::max<int>(1, num_threads() / static_cast<int>(jobs));
  std::vector<std::string> argv = {
      "/proc/self/exe",        "--device",    gpu.empty() ? ctx.device : "cuda", "--threads",
      std::to_string(threads), "--log-level", log_level_name(log_level())};
  if (!ctx.precision.empty()) argv.insert(argv.end(), {"--precision", ctx.precision});
  if (allow_large_values()) argv.push_back("--allow-large");
  argv.push_back("run");
  for (size_t i = 0; i < ctx.args.size(); ++i) {
    const std::string& a = ctx.args[i];
    if (a == "--jobs" || a == "--gpus") {
      ++i;
      continue;
    }
    if (a.rfind("--jobs=", 0) == 0 || a.rfind("--gpus=", 0) == 0) continue;
    argv.push_back(a);
  }
  argv.insert(argv.end(),
              {"--shard", std::to_string(index) + "/" + std::to_string(jobs), "--progress-lines"});
  return argv;
}

namespace {

/// Starts a worker in its own process group (a Ctrl-C reaches only this process, which passes
/// it on once), ended by SIGTERM if this process dies; `gpu` non-empty: with
/// CUDA_VISIBLE_DEVICES=gpu.
pid_t start_worker(std::vector<std::string> argv, const std::string& gpu) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e)
    if (gpu.empty() || std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0) env.push_back(*e);
  if (!gpu.empty()) env.push_back("CUDA_VISIBLE_DEVICES=" + gpu);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw InputError("run --jobs: cannot start a worker process");
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::execve(args[0], args.data(), envp.data());
    std::_Exit(127);
  }
  return pid;
}

/// Waits for every worker, passing each SIGINT/SIGTERM this process gets on to those still
/// running (a second Ctrl-C ends them at once, as it would one process); returns their exit
/// codes (128 + signal for one ended by a signal).
std::vector<int> wait_workers(const std::vector<pid_t>& pids) {
  std::vector<int> codes(pids.size(), -1);
  size_t running = pids.size();
  while (running > 0) {
    if (const int sig = g_jobs_signal) {
      g_jobs_signal = 0;
      for (size_t i = 0; i < pids.size(); ++i)
        if (codes[i] < 0) ::kill(pids[i], sig);
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      ::usleep(20000);
      continue;
    }
    if (pid < 0) break;  // no children left
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] != pid) continue;
      codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      --running;
    }
  }
  return codes;
}

/// Records SIGINT and SIGTERM for wait_workers (which passes them on) from here to the process's
/// end: a signal that comes after the merge, while the process exits, must not kill a finished
/// run (it exits with the run's own code).
void handle_job_signals() {
  g_jobs_signal = 0;
  struct sigaction sa = {};
  sa.sa_handler = on_jobs_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/// The databases of `dir` that hold results: a worker stopped by a signal before it created its
/// tables leaves an empty file, which is left out with a warning (its rerun fills it).
std::vector<std::string> mergeable_dbs(const std::string& dir) {
  std::vector<std::string> all, out;
  try {
    all = find_result_dbs(dir);
  } catch (const InputError&) {
    return {};  // no database at all: no worker got as far as storing anything
  }
  for (auto& path : all) {
    if (holds_results_tables(path)) {
      out.push_back(std::move(path));
    } else {
      log_warn("run --jobs: " + path + " holds no results yet (its worker stopped at its start)");
    }
  }
  return out;
}

/// --jobs within bounds: above the machine's cores only with --allow-large (each worker is a
/// process with its own model; workers placed on GPUs are not bound by the cores), and never
/// more workers than work items (the rest would idle).
int64_t bounded_jobs(int64_t jobs, const Experiment& ex, const RunOptions& o, bool on_gpus) {
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  if (!on_gpus && jobs > cores && !allow_large_values()) {
    throw UsageError("run: --jobs " + std::to_string(jobs) + " is above this machine's " +
                     std::to_string(cores) +
                     " cores (a worker process each); pass --allow-large "
                     "to start them anyway");
  }
  const GridPlan plan = plan_experiment(ex, o);
  if (plan.images_known && plan.selected < jobs) {
    log_info("run --jobs " + std::to_string(jobs) + ": the grid has " +
             std::to_string(plan.selected) + " work item(s); starting " +
             std::to_string(std::max<int64_t>(1, plan.selected)) + " worker(s)");
    return std::max<int64_t>(1, plan.selected);
  }
  return jobs;
}

/// `run --jobs N`: N workers (each on its GPU of `gpus`, where not empty), then their shards
/// merged into the results folder.
int run_jobs(CommandContext& ctx, const RunOptions& o, const Experiment& ex, int64_t jobs,
             const std::vector<std::string>& gpus) {
  const std::string dir = o.out_dir.empty() ? default_results_dir(ex) : o.out_dir;
  handle_job_signals();
  std::vector<pid_t> pids;
  std::string placed;
  for (int64_t i = 0; i < jobs; ++i) {
    const std::string& gpu = gpus[static_cast<size_t>(i)];
    pids.push_back(start_worker(worker_argv(ctx, i, jobs, gpu), gpu));
    if (!gpu.empty()) placed += (i ? ", " : "; GPUs (CUDA_VISIBLE_DEVICES) ") + gpu;
  }
  log_info("run " + ex.name + ": " + std::to_string(jobs) + " worker processes (shards 0.." +
           std::to_string(jobs - 1) + " of " + std::to_string(jobs) + placed + ") -> " + dir);
  const std::vector<int> codes = wait_workers(pids);
  int code = 0;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] != 0 && code == 0) code = codes[i];
    if (codes[i] != 0)
      log_warn("run --jobs: worker " + std::to_string(i) + " ended with code " +
               std::to_string(codes[i]));
  }
  const std::vector<std::string> dbs = mergeable_dbs(dir);
  if (dbs.empty()) return code != 0 ? code : 1;  // nothing stored (the workers' errors are above)
  // The merge (copy-on-write, short) runs to its end under a late SIGTERM too.
  const MergeSummary s = merge_results(dbs, dir);
  update_set_scores_after_merge(s.db, ctx.device);
  refresh_cell_views(s.db);
  ctx.out << ex.name << ": " << jobs << " workers merged (" << s.copied << " sample rows copied, "
          << s.duplicates << " already present)\nresults: " << s.db << ", " << s.h5 << "\n";
  if (code != 0) ctx.out << "to resume: " << resume_command(ctx) << "\n";
  return code;
}

}  // namespace

int64_t jobs_count(const std::string& flag, const std::string& device, const std::string& gpus,
                   int visible_gpus) {
  const bool cuda =
      device == "cuda" || device.rfind("cuda:", 0) == 0 || (device == "auto" && visible_gpus > 0);
  const int64_t listed =
      gpus.empty() ? 0 : 1 + static_cast<int64_t>(std::count(gpus.begin(), gpus.end(), ','));
  if (flag.empty()) return listed > 0 ? listed : 1;
  if (flag == "auto") return !cuda ? 1 : listed > 0 ? listed : std::max(1, visible_gpus);
  int64_t n = 0;
  size_t used = 0;
  try {
    n = std::stoll(flag, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != flag.size() || n < 1)
    throw UsageError("run: --jobs must be a count >= 1 or auto, got '" + flag + "'");
  return n;
}

namespace {

int cmd_run(CommandContext& ctx) {
  po::options_description visible = run_options();
  po::options_description all;
  all.add(visible).add(run_testing_options());
  all.add_options()("experiment", po::value<std::string>());
  po::variables_map vm = parse_command_args(ctx, all, {{"experiment", 1}});
  if (vm.count("help")) {
    ctx.out << visible << run_testing_options() << kRunNotes;
    return 0;
  }
  if (!vm.count("experiment")) throw UsageError("run: give an experiment file (experiments/*.ini)");
  check_count(vm, "stop-after", 1);
  check_count(vm, "crash-after", 0);
  const std::string gpus_flag = vm.count("gpus") ? vm["gpus"].as<std::string>() : "";
  const int64_t jobs = jobs_count(vm.count("jobs") ? vm["jobs"].as<std::string>() : "", ctx.device,
                                  gpus_flag, cuda_device_count());
  if ((jobs > 1 || vm.count("gpus")) && vm.count("shard"))
    throw UsageError("run: --jobs runs its own shards; give --jobs or --shard, not both");
  const char* visible_env = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::vector<std::string> gpus =
      jobs > 1 ? place_workers(jobs, ctx.device, gpus_flag, cuda_device_count(),
                               visible_env ? visible_env : "")
               : std::vector<std::string>{};
  if (jobs == 1 && !gpus_flag.empty()) {
    place_workers(1, ctx.device, gpus_flag, cuda_device_count(), "");  // checks the index
    ctx.device = "cuda:" + gpus_flag;  // one GPU: this process runs on it
  }
  const double progress = vm["progress-every"].as<double>();
  if (!(progress >= 0) || !std::isfinite(progress)) {
    throw UsageError("run: --progress-every must be a number of seconds >= 0, got " +
                     std::to_string(progress));
  }
  std::vector<std::string> sets =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const std::string file = vm["experiment"].as<std::string>();
  const std::vector<std::string> configs =
      vm.count("config") ? vm["config"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (!ctx.precision.empty()) {
    // --precision is <model>.precision: part of the model's settings, so of every cell's key.
    sets.push_back(load_experiment(file, configs, sets).model + ".precision=" + ctx.precision);
  }
  const Experiment ex = load_experiment(file, configs, sets);

  RunOptions o;
  if (vm.count("out")) o.out_dir = vm["out"].as<std::string>();
  if (vm.count("shard")) parse_shard(vm["shard"].as<std::string>(), &o.shard_index, &o.shard_count);
  o.retry_failed = vm["retry-failed"].as<bool>();
  o.force = vm["force"].as<bool>();
  o.float_samples = vm["float-samples"].as<bool>();
  o.device = ctx.device;
  if (vm.count("stop-after")) o.testing.stop_after = vm["stop-after"].as<int64_t>();
  if (vm.count("crash-after")) o.testing.crash_after = vm["crash-after"].as<int64_t>();
  o.progress_seconds = progress;
  o.progress_lines = vm["progress-lines"].as<bool>();
  if (o.progress_lines) ProgressBar::set_enabled(false);

  if (vm["dry-run"].as<bool>()) {
    print_plan(ex, plan_experiment(ex, o), ctx.out);
    if (o.shard_count > 1) ctx.out << "(shard " << o.shard_index << "/" << o.shard_count << ")\n";
    return 0;
  }
  if (jobs > 1) {
    const bool on_gpus =
        std::any_of(gpus.begin(), gpus.end(), [](const std::string& g) { return !g.empty(); });
    const int64_t n = bounded_jobs(jobs, ex, o, on_gpus);
    const std::vector<std::string> placed(gpus.begin(),
                                          gpus.begin() + std::min<int64_t>(n, gpus.size()));
    if (n > 1) return run_jobs(ctx, o, ex, n, placed);
  }
  const RunSummary s = run_experiment(ex, o);
  refresh_cell_views(s.paths.db);
  char line[512];
  std::snprintf(line, sizeof line,
                "%s: %lld samples, %lld already stored, %lld run now (%lld ok, %lld errors) in "
                "%.1f s%s\n",
                ex.name.c_str(), static_cast<long long>(s.selected),
                static_cast<long long>(s.skipped), static_cast<long long>(s.ok + s.errors),
                static_cast<long long>(s.ok), static_cast<long long>(s.errors), s.seconds,
                s.stopped ? " (stopped early)" : "");
  ctx.out << line;
  if (s.mismatched > 0 || s.rescored > 0) {
    ctx.out << "resume: " << s.mismatched << " stored sample(s) recomputed (their input changed), "
            << s.rescored << " stored sample(s) scored for metrics added since\n";
  }
  ctx.out << "results: " << s.paths.db << ", " << s.paths.h5 << "\n";
  if (s.stopped && s.skipped + s.ok + s.errors < s.selected)
    ctx.out << "to resume: " << resume_command(ctx) << "\n";
  // Stopped by SIGTERM/SIGINT: the shell's code for that signal, so SLURM and `&&` see an
  // unfinished run (what is stored is complete; a rerun resumes).
  if (s.stop_signal != 0) return 128 + s.stop_signal;
  return 0;
}

int cmd_merge(CommandContext& ctx) {
  po::options_description d(
      "usage: copaint merge RESULTS_DIR [DB...] [--out DIR]\n\n"
      "Merges the shard outputs of RESULTS_DIR (results.shard-*.sqlite with their .h5 files) and\n"
      "any further databases given into DIR/results.sqlite and DIR/results.h5 (DIR defaults to\n"
      "RESULTS_DIR). Refuses inputs of different experiments or configurations.\n\nOptions");
  d.add_options()("help,h", "print this help")("out", po::value<std::string>(),
                                               "output folder (default RESULTS_DIR)")(
      "inputs", po::value<std::vector<std::string>>(), "");
  po::variables_map vm = parse_command_args(ctx, d, {{"inputs", -1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  if (!vm.count("inputs")) throw UsageError("merge: give the results folder");
  const auto args = vm["inputs"].as<std::vector<std::string>>();
  const std::vector<std::string> dbs = find_result_dbs(args);
  const std::string out = vm.count("out") ? vm["out"].as<std::string>() : args.front();
  const MergeSummary s = merge_results(dbs, out);
  const SetScoreSummary sets = update_set_scores_after_merge(s.db, ctx.device);
  refresh_cell_views(s.db);
  ctx.out << "merged " << s.inputs << " database(s): " << s.copied << " sample rows copied, "
          << s.duplicates << " already present, " << s.runs_added << " run row(s) added; "
          << s.cells << " cells in " << s.db << " and " << s.h5 << "\n";
  if (sets.scored > 0)
    ctx.out << sets.scored << " set metric score(s) computed for completed cells\n";
  if (s.unreadable > 0)
    ctx.out << s.unreadable << " stored sample(s) left out: their image cannot be read\n";
  if (!s.missing_shards.empty())
    ctx.out << s.missing_shards.size() << " shard database(s) missing (see the warnings)\n";
  return 0;
}

}  // namespace

void register_run_command() {
  add_command(
      {"run", "run an experiment grid (experiments/*.ini) into SQLite + HDF5 results", cmd_run});
}

void register_merge_command() {
  add_command({"merge", "merge the shard outputs of an experiment into one database", cmd_merge});
}

}  // namespace copaint
