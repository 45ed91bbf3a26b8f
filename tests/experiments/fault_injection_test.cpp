// Fault injection on the `copaint` executable: SIGKILL at every injected fault point
// (COPAINT_FAULT_POINT, framework/core/atomic_file.h: between the steps of every write) and at
// seeded random moments, during run, merge, export and inpaint; a full disk (a private tmpfs where
// the kernel lets an unprivileged user namespace mount one, else skipped with a message; and
// RLIMIT_FSIZE, whose EFBIG stands in for ENOSPC everywhere); truncated, zeroed and flipped
// results.h5, results.sqlite and checkpoints; a merge beside a running run. Each case checks the
// exit code, that no process died of a signal it was not sent, that every stored sample is
// present once and bit-identical (image and scores) to an uninterrupted run, and that the next
// command completes. Tests named *Slow* are the many-iteration variants (ctest -E Slow skips
// them); the others are a representative subset for the default suite.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>

#include <ATen/ATen.h>

#include "experiments/imageio/image_io.h"
#include "experiments/store/file_lock.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

struct Proc {
  int code = -1;   ///< exit status, -1 when killed by a signal
  int signal = 0;  ///< the signal that ended it
  std::string out, err;
};

struct Spawn {
  std::map<std::string, std::string> env;
  double kill_after_s = -1;          ///< SIGKILL after this many seconds (if still running)
  rlim_t fsize = RLIM_INFINITY;      ///< RLIMIT_FSIZE: writes beyond it fail with EFBIG
  std::vector<std::string> wrapper;  ///< a program to run copaint under (argv prefix)
  int kill_signal = SIGKILL;         ///< what kill_after_s sends
  fs::path kill_after_file;          ///< if set, kill_after_s counts from when this file exists
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

/// Runs a program (copaint by default) with stdout/stderr captured.
Proc run_program(std::vector<std::string> argv, const Spawn& how = {}) {
  static int counter = 0;
  const fs::path log =
      fs::temp_directory_path() /
      ("copaint_fault_log_" + std::to_string(::getpid()) + "_" + std::to_string(++counter));
  const std::string out_path = log.string() + ".out", err_path = log.string() + ".err";
  argv.insert(argv.begin(), how.wrapper.begin(), how.wrapper.end());
  std::fflush(nullptr);  // the child must not write our buffered output again
  const pid_t pid = fork();
  if (pid == 0) {
    std::freopen(out_path.c_str(), "w", stdout);
    std::freopen(err_path.c_str(), "w", stderr);
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal, as ENOSPC would be
    if (how.fsize != RLIM_INFINITY) {
      const struct rlimit lim = {how.fsize, how.fsize};
      ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    for (const auto& [k, v] : how.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::_Exit(127);
  }
  int status = 0;
  if (how.kill_after_s >= 0) {
    const auto after = std::chrono::microseconds(static_cast<int64_t>(how.kill_after_s * 1e6));
    std::optional<std::chrono::steady_clock::time_point> until;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (!until && (how.kill_after_file.empty() || fs::exists(how.kill_after_file)))
        until = std::chrono::steady_clock::now() + after;
      if (until && std::chrono::steady_clock::now() >= *until) {
        ::kill(pid, how.kill_signal);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  } else {
    ::waitpid(pid, &status, 0);
  }
  Proc p;
  if (WIFEXITED(status)) p.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) p.signal = WTERMSIG(status);
  p.out = slurp(out_path);
  p.err = slurp(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return p;
}

/// A private copy of the executable (a rebuild during the tests must not swap it under them).
std::string& copaint_bin() {
  static std::string path = COPAINT_BIN;
  return path;
}

Proc copaint(std::vector<std::string> args, const Spawn& how = {}) {
  args.insert(args.begin(), {copaint_bin(), "--device", "cpu", "--threads", "1"});
  return run_program(std::move(args), how);
}

std::string describe(const Proc& p) {
  return "exit " + std::to_string(p.code) + " signal " + std::to_string(p.signal) +
         "\nstdout: " + p.out + "\nstderr: " + p.err;
}

/// Killed by our SIGKILL, or finished (the point or moment came after the end): never any
/// other death.
void expect_killed_or_done(const Proc& p) {
  EXPECT_TRUE(p.signal == SIGKILL || (p.signal == 0 && p.code == 0)) << describe(p);
}

/// An error is one line on stderr starting "copaint: " (progress lines aside), exit 1.
void expect_clear_error(const Proc& p, const std::string& needle = "") {
  EXPECT_EQ(p.signal, 0) << describe(p);
  EXPECT_EQ(p.code, 1) << describe(p);
  int lines = 0;
  std::istringstream in(p.err);
  for (std::string line; std::getline(in, line);) lines += line.rfind("copaint: ", 0) == 0;
  EXPECT_EQ(lines, 1) << p.err;
  if (!needle.empty()) EXPECT_NE(p.err.find(needle), std::string::npos) << p.err;
  EXPECT_EQ(p.err.find("HDF5-DIAG"), std::string::npos) << p.err;
  EXPECT_EQ(p.err.find("H5Dclose failed"), std::string::npos) << p.err;
}

// ---------------------------------------------------------------------------------------------
// Stored results: (cell key, image, sample) -> status, scores, image.

using Key = std::tuple<std::string, int64_t, int64_t>;
struct Stored {
  std::string status;
  std::map<std::string, double> scores;
  at::Tensor image;
};
using Results = std::map<Key, Stored>;

/// Every row of `db` with its image (which must read back); checks each key is stored once.
Results read_results(const std::string& db_path) {
  Results out;
  ResultsDb db(db_path, false);
  std::map<int64_t, std::string> keys;
  for (const auto& c : db.cells()) keys[c.id] = c.key;
  std::map<std::string, std::unique_ptr<ResultsH5>> files;
  const auto rows = db.samples();
  for (const auto& s : rows) {
    Stored r;
    r.status = s.status;
    for (const auto& sc : s.scores) r.scores[sc.metric] = sc.value;
    if (s.status == "ok") {
      auto& f = files[s.h5_file];
      if (!f) {
        f = std::make_unique<ResultsH5>((fs::path(db_path).parent_path() / s.h5_file).string(),
                                        ResultsH5::Mode::kRead);
      }
      r.image = f->read_uint8(s.sample_path);
      EXPECT_TRUE(f->readable(s.reference_path)) << s.reference_path;
      EXPECT_TRUE(f->readable(s.mask_path)) << s.mask_path;
    }
    EXPECT_TRUE(out.emplace(Key{keys.at(s.cell_id), s.image_index, s.sample_index}, r).second);
  }
  EXPECT_EQ(out.size(), rows.size());
  return out;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// `got` holds exactly the samples of `want` (or, with `subset`, some of them), bit-identical.
void expect_same(const Results& want, const Results& got, bool subset = false) {
  if (!subset) EXPECT_EQ(got.size(), want.size());
  for (const auto& [key, g] : got) {
    auto it = want.find(key);
    ASSERT_NE(it, want.end()) << std::get<0>(key) << " " << std::get<1>(key);
    EXPECT_EQ(g.status, it->second.status);
    ASSERT_EQ(g.scores.size(), it->second.scores.size());
    for (const auto& [m, v] : g.scores) EXPECT_TRUE(same_bits(v, it->second.scores.at(m))) << m;
    if (g.status == "ok") EXPECT_TRUE(at::equal(g.image, it->second.image));
  }
}

int64_t run_rows(const std::string& db) {
  return std::stoll(ResultsDb(db, false).query_text("SELECT COUNT(*) FROM experiment"));
}

// ---------------------------------------------------------------------------------------------
// The grid: 6 noisy 32x32 images, blended and copaint on the analytic model, 2 masks, 2 samples
// per image, batches of 2 (48 samples, 24 batches, about a second).

class FaultInjection : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    build_cache();
    root_ = fs::temp_directory_path() / ("copaint_fault_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    copaint_bin() = (cache_ / "copaint").string();
    // Private copies: tests write beside them (locks, WAL files) and may run in parallel.
    fs::copy(cache_ / "baseline", root_ / "baseline", fs::copy_options::recursive);
    fs::copy(cache_ / "shards", root_ / "shards", fs::copy_options::recursive);
    baseline_ = new Results(read_results(db(root_ / "baseline")));
    ASSERT_EQ(baseline_->size(), 48u);
  }
  /// The inputs shared by every test process of this executable (ctest runs each test in its
  /// own process): images, the experiment, a copy of copaint, the uninterrupted run and its two
  /// shards; built once under a lock, in a folder named after the executable's size and time.
  static void build_cache() {
    std::error_code ec;
    const auto stamp = fs::last_write_time(COPAINT_BIN, ec).time_since_epoch().count();
    const std::string name = "copaint_fault_cache_" + std::to_string(fs::file_size(COPAINT_BIN)) +
                             "_" + std::to_string(stamp);
    cache_ = fs::temp_directory_path() / name;
    const int fd = ::open((cache_.string() + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ::flock(fd, LOCK_EX);
    if (!fs::exists(cache_ / "done")) {
      // Caches of earlier builds, once a day old (a test of another build may be using one).
      const auto day_ago = fs::file_time_type::clock::now() - std::chrono::hours(24);
      for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
        const std::string other = e.path().filename().string();
        if (other.rfind("copaint_fault_cache_", 0) == 0 && other.rfind(name, 0) != 0 &&
            fs::last_write_time(e.path(), ec) < day_ago)
          fs::remove_all(e.path(), ec);
      }
      fs::remove_all(cache_);
      fs::create_directories(cache_ / "imgs");
      fs::copy_file(COPAINT_BIN, cache_ / "copaint");
      copaint_bin() = (cache_ / "copaint").string();
      at::Generator gen = at::detail::createCPUGenerator(42);
      for (int i = 0; i < 6; ++i) {
        write_image((cache_ / "imgs" / ("img" + std::to_string(i) + ".png")).string(),
                    at::rand({3, 32, 32}, gen).mul(2).sub(1));
      }
      std::ofstream(cache_ / "tiny.ini")
          << "name = tiny\nmodel = gaussian\ndataset = folder\nmethods = blended, copaint\n"
             "masks = half, line\nseeds = 3\nsamples = 2\nmetrics = psnr, known_mse\n"
             "batch_size = 2\n\n[folder]\nroot = "
          << (cache_ / "imgs").string()
          << "\nsize = 32\n\n[gaussian]\nimage_size = 32\nstd = 0.6\n\n[copaint]\n"
             "respacing = 5\nG = 1\n\n[blended]\nrespacing = 5\n";
      bool ok = copaint({"run", ini(), "--out", (cache_ / "baseline").string()}).code == 0;
      for (const char* sh : {"0/2", "1/2"}) {
        ok =
            ok &&
            copaint({"run", ini(), "--out", (cache_ / "shards").string(), "--shard", sh}).code == 0;
      }
      if (ok) std::ofstream(cache_ / "done") << "ok\n";
    }
    ::flock(fd, LOCK_UN);
    ::close(fd);
    ASSERT_TRUE(fs::exists(cache_ / "done")) << "could not run the uninterrupted grid";
  }
  static void TearDownTestSuite() {
    delete baseline_;
    baseline_ = nullptr;
    fs::remove_all(root_);
  }
  static std::string ini() { return (cache_ / "tiny.ini").string(); }
  static std::string db(const fs::path& dir) { return (dir / "results.sqlite").string(); }
  static fs::path fresh(const std::string& name) {
    const fs::path d = root_ / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }
  /// How many fault points `args` passes through when nothing goes wrong (in a scratch copy of
  /// `dir`, which is left as it was).
  static int count_fault_points(const std::vector<std::string>& args) {
    const Proc p = copaint(args, Spawn{{{"COPAINT_FAULT_POINT", "list"}}});
    EXPECT_EQ(p.code, 0) << describe(p);
    int n = 0;
    std::istringstream in(p.err);
    for (std::string line; std::getline(in, line);) n += line.rfind("fault point ", 0) == 0;
    return n;
  }
  static Spawn fault_at(int point) {
    return Spawn{{{"COPAINT_FAULT_POINT", std::to_string(point)}}};
  }

  static fs::path root_, cache_;
  static Results* baseline_;
};

fs::path FaultInjection::root_;
fs::path FaultInjection::cache_;
Results* FaultInjection::baseline_ = nullptr;

/// Seeded distinct points in [1, n].
std::vector<int> pick(int n, int count, uint32_t seed) {
  std::vector<int> all;
  for (int i = 1; i <= n; ++i) all.push_back(i);
  std::shuffle(all.begin(), all.end(), std::mt19937(seed));
  all.resize(std::min<size_t>(all.size(), static_cast<size_t>(count)));
  return all;
}

// ---------------------------------------------------------------------------------------------
// run

/// Kills a run at each of `points` in turn (each a fresh process resuming the previous one),
/// then resumes to the end: bit-identical to the baseline.
void kill_run_at_points(const fs::path& dir, const std::vector<int>& points, const std::string& ini,
                        const Results& baseline) {
  for (int k : points) {
    const Proc p = copaint({"run", ini, "--out", dir.string()},
                           Spawn{{{"COPAINT_FAULT_POINT", std::to_string(k)}}});
    expect_killed_or_done(p);
  }
  const Proc done = copaint({"run", ini, "--out", dir.string()});
  ASSERT_EQ(done.code, 0) << describe(done);
  expect_same(baseline, read_results((dir / "results.sqlite").string()));
}

TEST_F(FaultInjection, RunKilledAtFaultPointsResumesBitIdentical) {
  // Two kills in the same folder (points are counted per process: the second, resumed run
  // counts again): inside a batch's HDF5 writes, then between a later batch's close and commit
  // (RunKilledAtEveryFaultPointSlow tries them all). Each must have fired.
  const fs::path dir = fresh("run_points");
  for (int k : {13, 61}) {
    const Proc p = copaint({"run", ini(), "--out", dir.string()}, fault_at(k));
    EXPECT_EQ(p.signal, SIGKILL) << "point " << k << ": " << describe(p);
  }
  kill_run_at_points(dir, {}, ini(), *baseline_);
}

TEST_F(FaultInjection, RunKilledAtEveryFaultPointSlow) {
  const int n = count_fault_points({"run", ini(), "--out", fresh("run_list").string()});
  for (int k = 1; k <= n; k += (k < 40 ? 1 : 7)) {
    SCOPED_TRACE("fault point " + std::to_string(k));
    kill_run_at_points(fresh("run_every"), {k}, ini(), *baseline_);
  }
}

TEST_F(FaultInjection, RunKilledAtRandomMomentsSlow) {
  const fs::path dir = fresh("run_random");
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> when(0.3, 1.6);  // startup is about 0.5 s
  for (int i = 0; i < 25; ++i) {
    Spawn how;
    how.kill_after_s = when(rng);
    expect_killed_or_done(copaint({"run", ini(), "--out", dir.string()}, how));
  }
  const Proc done = copaint({"run", ini(), "--out", dir.string()});
  ASSERT_EQ(done.code, 0) << describe(done);
  expect_same(*baseline_, read_results(db(dir)));
}

// ---------------------------------------------------------------------------------------------
// Full disk

// RLIMIT_FSIZE: every write past the limit fails with EFBIG (our stand-in for ENOSPC, which
// takes the same paths: a failed write(2)). One line, exit 1, never a crash; without the limit
// the same command completes, bit-identical.
TEST_F(FaultInjection, FileSizeLimitDuringRunIsAnErrorAndTheSameCommandCompletes) {
  const fs::path dir = fresh("fsize");
  for (rlim_t limit : {rlim_t(120000)}) {  // some batches committed, then EFBIG
    Spawn how;
    how.fsize = limit;
    const Proc p = copaint({"run", ini(), "--out", dir.string()}, how);
    expect_clear_error(p);  // HDF5's or our check's "File too large", or SQLite's I/O error
    EXPECT_TRUE(p.err.find("File too large") != std::string::npos ||
                p.err.find("disk I/O error") != std::string::npos)
        << p.err;
  }
  const Proc done = copaint({"run", ini(), "--out", dir.string()});
  ASSERT_EQ(done.code, 0) << describe(done);
  expect_same(*baseline_, read_results(db(dir)));
}

// run --jobs: worker processes, one shard each, merged.

TEST_F(FaultInjection, JobsRunsShardWorkersAndMergesBitIdentical) {
  const fs::path dir = fresh("jobs");
  const Proc p = copaint({"run", ini(), "--out", dir.string(), "--jobs", "2"});
  ASSERT_EQ(p.code, 0) << describe(p);
  EXPECT_NE(p.out.find("2 workers merged"), std::string::npos) << p.out;
  EXPECT_NE(p.err.find("[shard 1/2]"), std::string::npos) << p.err;  // progress lines, labelled
  EXPECT_TRUE(fs::exists(dir / "results.shard-0-of-2.sqlite"));
  EXPECT_TRUE(fs::exists(dir / "results.shard-1-of-2.sqlite"));
  expect_same(*baseline_, read_results(db(dir)));
  // A rerun with the same N resumes: every worker finds its shard done.
  const Proc again = copaint({"run", ini(), "--out", dir.string(), "--jobs", "2"});
  ASSERT_EQ(again.code, 0) << describe(again);
  EXPECT_NE(again.out.find("0 run now"), std::string::npos) << again.out;
  expect_same(*baseline_, read_results(db(dir)));
  const Proc both = copaint({"run", ini(), "--out", dir.string(), "--jobs", "2", "--shard", "0/2"});
  EXPECT_EQ(both.code, 2) << describe(both);
  EXPECT_NE(both.err.find("--jobs or --shard"), std::string::npos) << both.err;
  EXPECT_EQ(copaint({"run", ini(), "--out", dir.string(), "--jobs", "0"}).code, 2);
}

TEST_F(FaultInjection, JobsPassesSigtermToItsWorkersAndResumes) {
  // 60 steps instead of 5: long enough for a SIGTERM to come while the workers run.
  auto args = [&](const fs::path& dir) {
    return std::vector<std::string>{"run",    ini(),
                                    "--out",  dir.string(),
                                    "--jobs", "2",
                                    "--set",  "copaint.respacing=60",
                                    "--set",  "blended.respacing=60"};
  };
  ASSERT_EQ(copaint(args(fresh("jobs_full"))).code, 0);
  const Results want = read_results(db(root_ / "jobs_full"));
  ASSERT_EQ(want.size(), 48u);
  {
    // At once, from its start: ended as any process is before it handles signals (no worker
    // started), or handled (below).
    const fs::path dir = fresh("jobs_term");
    Spawn term;
    term.kill_after_s = 0.02;
    term.kill_signal = SIGTERM;
    const Proc p = copaint(args(dir), term);
    if (p.signal == SIGTERM) EXPECT_FALSE(fs::exists(dir / "results.shard-0-of-2.sqlite"));
    ASSERT_EQ(copaint(args(dir)).code, 0);
    expect_same(want, read_results(db(dir)));
  }
  int stopped = 0;
  // Counted from when worker 0 creates its database: the parent handles signals by then, and
  // the workers have their 24 samples still to run.
  for (double after : {0.0, 0.2, 1.0}) {
    const fs::path dir = fresh("jobs_term");
    Spawn term;
    term.kill_after_s = after;
    term.kill_signal = SIGTERM;
    term.kill_after_file = dir / "results.shard-0-of-2.sqlite";
    const Proc p = copaint(args(dir), term);
    // It handles SIGTERM: passes it on, waits for its workers, merges what they stored and
    // exits 143 (or 0 when the grid was done first); it never dies of it.
    EXPECT_EQ(p.signal, 0) << after << " s: " << describe(p);
    EXPECT_TRUE(p.code == 0 || p.code == 128 + SIGTERM) << describe(p);
    stopped += p.code == 128 + SIGTERM;
    if (fs::exists(db(dir))) expect_same(want, read_results(db(dir)), true);
    const Proc rest = copaint(args(dir));
    ASSERT_EQ(rest.code, 0) << describe(rest);
    expect_same(want, read_results(db(dir)));
  }
  EXPECT_GE(stopped, 1) << "no SIGTERM came while the workers ran";
}

TEST_F(FaultInjection, FileSizeLimitAtManySizesSlow) {
  for (rlim_t limit = 20000; limit <= 620000; limit += 40000) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    const fs::path dir = fresh("fsize_many");
    Spawn how;
    how.fsize = limit;
    const Proc p = copaint({"run", ini(), "--out", dir.string()}, how);
    EXPECT_EQ(p.signal, 0) << describe(p);
    if (p.code != 0) expect_clear_error(p);
    const Proc again = copaint({"run", ini(), "--out", dir.string()}, how);  // still full
    EXPECT_EQ(again.signal, 0) << describe(again);
    const Proc done = copaint({"run", ini(), "--out", dir.string()});
    ASSERT_EQ(done.code, 0) << describe(done);
    expect_same(*baseline_, read_results(db(dir)));
  }
}

TEST_F(FaultInjection, FullDiskDuringInpaintIsAnErrorWithNoEmptyFiles) {
  const fs::path dir = fresh("inpaint_full");
  const std::vector<std::string> args = {"inpaint",
                                         "--method",
                                         "blended",
                                         "--model",
                                         "gaussian",
                                         "--set",
                                         "gaussian.image_size=32",
                                         "--set",
                                         "blended.respacing=5",
                                         "--image",
                                         (cache_ / "imgs" / "img0.png").string(),
                                         "--mask",
                                         "half",
                                         "--samples",
                                         "2",
                                         "--out",
                                         (dir / "out").string()};
  Spawn how;
  how.fsize = 600;  // the first PNG fits, a later one does not
  const Proc p = copaint(args, how);
  expect_clear_error(p, "File too large");
  EXPECT_EQ(p.out.find("wrote"), std::string::npos) << p.out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      EXPECT_GT(e.file_size(), 0u) << e.path();
      EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
    }
  }
  const Proc done = copaint(args);
  ASSERT_EQ(done.code, 0) << describe(done);
  EXPECT_NE(done.out.find("wrote 2 samples"), std::string::npos) << done.out;
}

/// Whether this kernel lets us mount a tmpfs in a user namespace (`unshare -r -m`).
bool can_mount_tmpfs() {
  const Proc p = run_program({"unshare", "-r", "-m", "sh", "-c",
                              "mount -t tmpfs -o size=64k none /mnt 2>/dev/null || "
                              "mount -t tmpfs -o size=64k none /tmp"});
  return p.code == 0 && p.signal == 0;
}

// A real full disk: a 320 KiB tmpfs (the grid needs about 600 KiB). The run fails with one line
// (exit 1); after the tmpfs grows, the same command completes, bit-identical. All inside one
// private mount namespace; the results are copied out for checking.
TEST_F(FaultInjection, FullTmpfsDuringRunIsAnErrorAndTheSameCommandCompletes) {
  if (!can_mount_tmpfs()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (unshare -r -m / mount refused): the full-disk "
                    "case is covered by FileSizeLimitDuringRun* (RLIMIT_FSIZE) only";
  }
  const fs::path dir = fresh("tmpfs"), mnt = dir / "mnt";
  fs::create_directories(mnt);
  const std::string c =
      copaint_bin() + " --device cpu --threads 1 run " + ini() + " --out " + (mnt / "r").string();
  const std::string script =
      "mount -t tmpfs -o size=320k none " + mnt.string() + " || exit 90\n" + c + " 2> " +
      (dir / "err1").string() + "; echo $? > " + (dir / "rc1").string() + "\n" + c + " 2> " +
      (dir / "err2").string() + "; echo $? > " + (dir / "rc2").string() +
      "\nmount -o remount,size=4m " + mnt.string() + "\n" + c + " 2> " + (dir / "err3").string() +
      "; echo $? > " + (dir / "rc3").string() + "\ncp -r " + (mnt / "r").string() + " " +
      (dir / "copy").string() + "\n";
  const Proc p = run_program({"unshare", "-r", "-m", "sh", "-c", script});
  ASSERT_EQ(p.code, 0) << describe(p);
  for (int k : {1, 2}) {
    Proc run;
    run.code = std::stoi(slurp(dir / ("rc" + std::to_string(k))));
    run.err = slurp(dir / ("err" + std::to_string(k)));
    SCOPED_TRACE("run " + std::to_string(k));
    expect_clear_error(run, "No space left on device");
  }
  EXPECT_EQ(std::stoi(slurp(dir / "rc3")), 0) << slurp(dir / "err3");
  expect_same(*baseline_, read_results(db(dir / "copy")));
}

// ---------------------------------------------------------------------------------------------
// Damaged files

enum class Damage { kDelete, kEmpty, kTruncate, kZero, kFlip };

void damage(const fs::path& file, Damage how, uint32_t seed = 1) {
  const uintmax_t size = fs::file_size(file);
  if (how == Damage::kDelete) {
    fs::remove(file);
  } else if (how == Damage::kEmpty) {
    fs::resize_file(file, 0);
  } else if (how == Damage::kTruncate) {
    fs::resize_file(file, size / 2);
  } else {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    std::mt19937 rng(seed);
    // Zero a block in the middle, or flip 16 bytes at random offsets past the superblock.
    const uintmax_t start = how == Damage::kZero ? size / 3 : 0;
    for (int k = 0; k < (how == Damage::kZero ? 1 : 16); ++k) {
      const uintmax_t at = how == Damage::kZero ? start : 2048 + rng() % (size - 2048);
      f.seekg(static_cast<std::streamoff>(at));
      std::string block(how == Damage::kZero ? std::min<uintmax_t>(size / 3, 65536) : 1, '\0');
      f.read(block.data(), static_cast<std::streamsize>(block.size()));
      for (auto& ch : block) ch = how == Damage::kZero ? '\0' : static_cast<char>(ch ^ 0x5a);
      f.seekp(static_cast<std::streamoff>(at));
      f.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
}

/// A resume of a damaged results.h5 says it recomputes, and ends bit-identical.
void expect_resume_repairs(const fs::path& dir, const std::string& ini, const Results& baseline) {
  const Proc p = copaint({"run", ini, "--out", dir.string()});
  ASSERT_EQ(p.code, 0) << describe(p);
  EXPECT_NE(p.err.find("recomputing"), std::string::npos) << p.err;
  expect_same(baseline, read_results((dir / "results.sqlite").string()));
}

void damaged_h5_resumes(const fs::path& dir, const fs::path& baseline_dir, Damage d,
                        const std::string& ini, const Results& baseline) {
  SCOPED_TRACE("damage " + std::to_string(static_cast<int>(d)));
  fs::remove_all(dir);
  fs::copy(baseline_dir, dir, fs::copy_options::recursive);
  damage(dir / "results.h5", d);
  expect_resume_repairs(dir, ini, baseline);
}

TEST_F(FaultInjection, DamagedResultsH5IsDetectedOnResumeAndRecomputed) {
  for (Damage d : {Damage::kTruncate, Damage::kZero}) {
    damaged_h5_resumes(root_ / "damaged_h5", root_ / "baseline", d, ini(), *baseline_);
  }
}

TEST_F(FaultInjection, DeletedOrFlippedResultsH5IsRecomputedSlow) {
  for (Damage d : {Damage::kDelete, Damage::kEmpty, Damage::kFlip}) {
    damaged_h5_resumes(root_ / "damaged_h5", root_ / "baseline", d, ini(), *baseline_);
  }
}

TEST_F(FaultInjection, DamagedResultsH5EveryKindSlow) {
  for (Damage d : {Damage::kDelete, Damage::kTruncate, Damage::kZero, Damage::kFlip}) {
    SCOPED_TRACE("damage " + std::to_string(static_cast<int>(d)));
    const fs::path dir = fresh("damaged_h5");
    fs::copy(root_ / "baseline", dir, fs::copy_options::recursive);
    damage(dir / "results.h5", d);
    expect_resume_repairs(dir, ini(), *baseline_);
  }
}

TEST_F(FaultInjection, DamagedResultsH5ManySeedsSlow) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    for (Damage d : {Damage::kEmpty, Damage::kZero, Damage::kFlip}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " damage " +
                   std::to_string(static_cast<int>(d)));
      const fs::path dir = fresh("damaged_h5_seeds");
      fs::copy(root_ / "baseline", dir, fs::copy_options::recursive);
      damage(dir / "results.h5", d, seed);
      const Proc p = copaint({"run", ini(), "--out", dir.string()});
      ASSERT_EQ(p.code, 0) << describe(p);
      expect_same(*baseline_, read_results(db(dir)));
    }
  }
}

// SQLite is the source of truth: a damaged database cannot be repaired from the images, so
// every command on it is one clear line, exit 1 (never a crash), and nothing is written. Flipped
// bytes inside its pages can go unnoticed (SQLite keeps no page checksums): not tested here.
void damaged_sqlite_is_an_error(const fs::path& dir, const fs::path& baseline_dir, Damage d,
                                const std::vector<std::vector<std::string>>& commands) {
  SCOPED_TRACE("damage " + std::to_string(static_cast<int>(d)));
  fs::remove_all(dir);
  fs::copy(baseline_dir, dir, fs::copy_options::recursive);
  for (const auto& side : {"results.sqlite-wal", "results.sqlite-shm"}) fs::remove(dir / side);
  if (d == Damage::kZero) {
    fs::resize_file(dir / "results.sqlite", 0);
    fs::resize_file(dir / "results.sqlite", 8192);
  } else {
    damage(dir / "results.sqlite", d);
  }
  for (const auto& args : commands) {
    SCOPED_TRACE(args[0]);
    expect_clear_error(copaint(args));
  }
}

TEST_F(FaultInjection, DamagedResultsSqliteIsAClearError) {
  const fs::path dir = root_ / "damaged_db";
  damaged_sqlite_is_an_error(dir, root_ / "baseline", Damage::kZero,
                             {{"run", ini(), "--out", dir.string()}});
}

TEST_F(FaultInjection, DamagedResultsSqliteEveryCommandSlow) {
  const fs::path dir = root_ / "damaged_db";
  for (Damage d : {Damage::kTruncate, Damage::kZero}) {
    damaged_sqlite_is_an_error(dir, root_ / "baseline", d,
                               {{"run", ini(), "--out", dir.string()},
                                {"report", dir.string()},
                                {"merge", db(dir), "--out", fresh("damaged_db_m").string()}});
  }
}

TEST_F(FaultInjection, DamagedCheckpointIsAClearErrorSlow) {
  const fs::path src = fs::path(COPAINT_SOURCE_DIR) / "experiments" / "bundled";
  for (Damage d : {Damage::kTruncate, Damage::kZero, Damage::kFlip}) {
    SCOPED_TRACE("damage " + std::to_string(static_cast<int>(d)));
    const fs::path dir = fresh("damaged_ckpt");
    fs::copy_file(src / "fashion_mnist_adm.pt", dir / "m.pt");
    damage(dir / "m.pt", d);
    const Proc p = copaint({"inpaint", "--model", "adm", "--config", (src / "model.ini").string(),
                            "--checkpoint", (dir / "m.pt").string(), "--method", "blended",
                            "--image", (cache_ / "imgs" / "img0.png").string(), "--mask", "half",
                            "--out", (dir / "out").string()});
    expect_clear_error(p);
  }
}

// ---------------------------------------------------------------------------------------------
// merge

class FaultInjectionMerge : public FaultInjection {
 protected:
  /// Shards 0/2 and 1/2 of the grid (this process's copy).
  static fs::path shards() { return root_ / "shards"; }
  static std::string shard_db(int i) {
    return (shards() / ("results.shard-" + std::to_string(i) + "-of-2.sqlite")).string();
  }
  /// A merged folder holding shard 0 (a completed earlier merge).
  static fs::path merged_shard0(const std::string& name) {
    const fs::path m = fresh(name);
    const Proc p = copaint({"merge", shard_db(0), "--out", m.string()});
    EXPECT_EQ(p.code, 0) << describe(p);
    EXPECT_NE(p.err.find("results.shard-1-of-2.sqlite' is missing"), std::string::npos) << p.err;
    return m;
  }
  /// After an interrupted merge of shard 1: what shard 0's merge stored is all there, untouched,
  /// and nothing is stored twice or differently from the baseline.
  static void expect_earlier_merge_intact(const fs::path& m, const Results& earlier) {
    const Results now = read_results(db(m));
    expect_same(*baseline_, now, /*subset=*/true);
    for (const auto& [key, r] : earlier) EXPECT_TRUE(now.count(key)) << std::get<0>(key);
  }
  /// The final merge completes; merging again adds nothing (no run rows, no sample rows).
  static void expect_merge_completes(const fs::path& m, bool twice = true) {
    const Proc p = copaint({"merge", shards().string(), "--out", m.string()});
    ASSERT_EQ(p.code, 0) << describe(p);
    expect_same(*baseline_, read_results(db(m)));
    EXPECT_EQ(run_rows(db(m)), 2);
    if (!twice) return;
    const Proc again = copaint({"merge", shards().string(), "--out", m.string()});
    ASSERT_EQ(again.code, 0) << describe(again);
    EXPECT_NE(again.out.find(" 0 sample rows copied"), std::string::npos) << again.out;
    EXPECT_EQ(run_rows(db(m)), 2);
  }
  static int merge_points() {
    const fs::path scratch = merged_shard0("merge_list");
    return count_fault_points({"merge", shard_db(1), "--out", scratch.string()});
  }
};

TEST_F(FaultInjectionMerge, KilledAtFaultPointsNeverDamagesAnEarlierMerge) {
  const fs::path m = merged_shard0("merge_points");
  const Results earlier = read_results(db(m));
  ASSERT_EQ(earlier.size(), 24u);
  // Point 20: among the image copies into results.h5.tmp-<pid> (KilledAtEveryFaultPointSlow
  // tries every point); it must have fired.
  const Proc p = copaint({"merge", shard_db(1), "--out", m.string()}, fault_at(20));
  EXPECT_EQ(p.signal, SIGKILL) << describe(p);
  expect_earlier_merge_intact(m, earlier);
  expect_merge_completes(m);
}

TEST_F(FaultInjectionMerge, KilledAtEveryFaultPointSlow) {
  const int n = merge_points();
  for (int k = 1; k <= n; ++k) {
    SCOPED_TRACE("fault point " + std::to_string(k));
    const fs::path m = merged_shard0("merge_every");
    const Results earlier = read_results(db(m));
    expect_killed_or_done(copaint({"merge", shard_db(1), "--out", m.string()}, fault_at(k)));
    expect_earlier_merge_intact(m, earlier);
    expect_merge_completes(m);
  }
}

TEST_F(FaultInjectionMerge, KilledAtRandomMomentsSlow) {
  const fs::path m = merged_shard0("merge_random");
  const Results earlier = read_results(db(m));
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> when(0.2, 1.0);
  for (int i = 0; i < 25; ++i) {
    Spawn how;
    how.kill_after_s = when(rng);
    expect_killed_or_done(copaint({"merge", shard_db(1), "--out", m.string()}, how));
    expect_earlier_merge_intact(m, earlier);
  }
  expect_merge_completes(m);
}

TEST_F(FaultInjectionMerge, FileSizeLimitIsAnErrorAndKeepsTheEarlierMergeSlow) {
  const fs::path m = merged_shard0("merge_fsize");
  const Results earlier = read_results(db(m));
  Spawn how;
  how.fsize = fs::file_size(m / "results.h5") + 20000;  // the copy fits, the new images do not
  expect_clear_error(copaint({"merge", shard_db(1), "--out", m.string()}, how), "File too large");
  expect_earlier_merge_intact(m, earlier);
  expect_merge_completes(m);
}

// The results lock: a merge beside a run writing one of its inputs (or its output) is refused
// at once with one line; once the run is done, the merge completes.
TEST_F(FaultInjectionMerge, MergeBesideARunningRunIsRefused) {
  const fs::path m = fresh("merge_locked");
  {
    FileLock run_lock(results_lock_path(shard_db(1)), "test");  // as a running `copaint run`
    expect_clear_error(copaint({"merge", shards().string(), "--out", m.string()}), "is locked");
    EXPECT_FALSE(fs::exists(m / "results.h5"));
  }
  {
    FileLock run_lock(results_lock_path(db(m)), "test");  // a run writing the output folder
    expect_clear_error(copaint({"merge", shards().string(), "--out", m.string()}), "is locked");
  }
  expect_merge_completes(m, /*twice=*/false);
}

TEST_F(FaultInjectionMerge, ConcurrentRunAndMergeSlow) {
  // Slower cells (1000 steps: shard 1 runs for seconds, not 0.2 s) so that merges come while
  // shard 1 is running.
  const std::vector<std::string> slow = {"--set", "copaint.respacing=1000", "--set",
                                         "blended.respacing=1000"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), slow.begin(), slow.end());
    return args;
  };
  const fs::path whole = fresh("concurrent_whole");
  ASSERT_EQ(copaint(with({"run", ini(), "--out", whole.string()})).code, 0);
  const Results want = read_results(db(whole));
  int refused = 0, merged = 0;
  for (int round = 0; round < 3; ++round) {
    const fs::path s = fresh("concurrent"), m = fresh("concurrent_m");
    ASSERT_EQ(copaint(with({"run", ini(), "--out", s.string(), "--shard", "0/2"})).code, 0);
    Proc run;
    std::atomic<bool> running{true};
    std::thread t([&] {
      run = copaint(with({"run", ini(), "--out", s.string(), "--shard", "1/2"}));
      running = false;
    });
    // Events, not durations: merges start once shard 1 has created its database and go on
    // back to back for as long as it runs (a fixed count of merges could all miss a fast run).
    const fs::path shard1 = s / "results.shard-1-of-2.sqlite";
    while (running && !fs::exists(shard1))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int i = 0; i < 500 && (running || i < 2); ++i) {
      const Proc p = copaint({"merge", s.string(), "--out", m.string()});
      EXPECT_EQ(p.signal, 0) << describe(p);
      if (p.code == 0) {
        ++merged;
      } else {
        expect_clear_error(p, "is locked");
        ++refused;
      }
    }
    t.join();
    ASSERT_EQ(run.code, 0) << describe(run);
    const Proc p = copaint({"merge", s.string(), "--out", m.string()});
    ASSERT_EQ(p.code, 0) << describe(p);
    expect_same(want, read_results(db(m)));
    EXPECT_EQ(run_rows(db(m)), 2);
  }
  EXPECT_GT(refused, 0);
  std::printf("%d merges refused by the lock, %d done before or after the run\n", refused, merged);
}

// ---------------------------------------------------------------------------------------------
// export, export --grid, export-inputs: a kill leaves the previous file or the complete new one

/// Kills `args` at each of `points`: every file it writes under `out` is then either absent or
/// identical to the uninterrupted command's; the next command completes.
void kill_export_at(const std::vector<std::string>& args, const fs::path& out,
                    const std::map<std::string, std::string>& want,
                    const std::vector<int>& points) {
  for (int k : points) {
    SCOPED_TRACE("fault point " + std::to_string(k));
    fs::remove_all(out);
    expect_killed_or_done(copaint(args, Spawn{{{"COPAINT_FAULT_POINT", std::to_string(k)}}}));
    std::error_code ec;
    auto at = [&](const std::string& rel) { return rel.empty() ? out : out / rel; };
    for (const auto& [rel, bytes] : want) {
      if (fs::exists(at(rel), ec)) EXPECT_EQ(slurp(at(rel)), bytes) << rel;
    }
    const Proc done = copaint(args);
    ASSERT_EQ(done.code, 0) << describe(done);
    for (const auto& [rel, bytes] : want) EXPECT_EQ(slurp(at(rel)), bytes) << rel;
  }
}

/// Every file under `dir` (relative path -> bytes), temporary files excluded.
std::map<std::string, std::string> files_under(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (fs::is_regular_file(dir)) return {{"", slurp(dir)}};
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().string().find(".tmp-") == std::string::npos)
      out[fs::relative(e.path(), dir).string()] = slurp(e.path());
  }
  return out;
}

TEST_F(FaultInjection, ExportGridKilledAtFaultPointsLeavesNoPartialFile) {
  const fs::path out = fresh("export_grid") / "grid.png";
  const std::vector<std::string> args = {"export", (root_ / "baseline").string(), "--grid", "--out",
                                         out.string()};
  ASSERT_EQ(copaint(args).code, 0);
  const auto want = files_under(out);
  // Point 1: the grid's bytes written to the temporary file, not yet synced or renamed.
  kill_export_at(args, out, want, {1});
}

TEST_F(FaultInjection, ExportKilledAtEveryFaultPointSlow) {
  const fs::path dir = fresh("export");
  const std::string base = (root_ / "baseline").string();
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{"--grid"}, std::vector<std::string>{"--sample", "3"}}) {
    const fs::path out = dir / "e.png";
    std::vector<std::string> args = {"export", base, "--out", out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_EQ(copaint(args).code, 0);
    const auto want = files_under(out);
    const int n = count_fault_points(args);
    ASSERT_GE(n, 2);
    std::vector<int> all;
    for (int k = 1; k <= n; ++k) all.push_back(k);
    kill_export_at(args, out, want, all);
  }
}

TEST_F(FaultInjection, ExportInputsKilledAtSomeFaultPointsSlow) {
  const fs::path out = fresh("export_inputs") / "in";
  const std::vector<std::string> args = {"export-inputs", ini(), "--out", out.string()};
  ASSERT_EQ(copaint(args).code, 0);
  const auto want = files_under(out);
  const int n = count_fault_points(args);
  ASSERT_GT(n, 10);
  kill_export_at(args, out, want, pick(n, 1, 5));
}

TEST_F(FaultInjection, ExportInputsKilledAtEveryFaultPointSlow) {
  const fs::path out = fresh("export_inputs_all") / "in";
  const std::vector<std::string> args = {"export-inputs", ini(), "--out", out.string()};
  ASSERT_EQ(copaint(args).code, 0);
  const auto want = files_under(out);
  const int n = count_fault_points(args);
  std::vector<int> all;
  for (int k = 1; k <= n; k += 3) all.push_back(k);
  kill_export_at(args, out, want, all);
}

// ---------------------------------------------------------------------------------------------
// train: killed at every save step, the same command resumes and ends bit-identical

TEST_F(FaultInjection, TrainKilledAtFaultPointsResumesBitIdenticalSlow) {
  auto args = [&](const fs::path& out) {
    return std::vector<std::string>{"train",
                                    "--dataset",
                                    "folder",
                                    "--set",
                                    "folder.root=" + (cache_ / "imgs").string(),
                                    "--set",
                                    "folder.size=32",
                                    "--set",
                                    "adm.image_size=32",
                                    "--set",
                                    "adm.num_channels=32",
                                    "--set",
                                    "adm.num_res_blocks=1",
                                    "--set",
                                    "adm.channel_mult=1,1",
                                    "--set",
                                    "adm.attention_resolutions=16",
                                    "--steps",
                                    "3",
                                    "--batch-size",
                                    "2",
                                    "--save-every",
                                    "1",
                                    "--out",
                                    out.string()};
  };
  const fs::path whole = fresh("train_whole") / "t";
  ASSERT_EQ(copaint(args(whole)).code, 0);
  const int n = count_fault_points(args(fresh("train_list") / "t"));
  ASSERT_GE(n, 6);
  for (int k = 1; k <= n; ++k) {
    SCOPED_TRACE("fault point " + std::to_string(k));
    const fs::path out = fresh("train_kill") / "t";
    expect_killed_or_done(copaint(args(out), fault_at(k)));
    const Proc done = copaint(args(out));
    ASSERT_EQ(done.code, 0) << describe(done);
    for (const char* f : {"model_ema.pt", "train_state.safetensors"})
      EXPECT_EQ(slurp(out / f), slurp(whole / f)) << f;
  }
}

}  // namespace
}  // namespace copaint
