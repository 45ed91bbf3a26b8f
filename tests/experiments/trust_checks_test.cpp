// Inputs and selections that used to pass silently, through run_cli: the grid's input column
// (masks stored 0/1), --init-noise checks, bounds on --samples, --jobs and declared image sizes,
// an inpaint folder reused, and `export --grid` selections that match nothing.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "experiments/app/cli.h"
#include "experiments/imageio/image_io.h"
#include "experiments/report/plots.h"
#include "experiments/report/report.h"
#include "experiments/store/merge.h"
#include "framework/core/error.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out, err;
};

Result cli(std::vector<std::string> args) {
  args.insert(args.begin(), {"--device", "cpu", "--threads", "1", "-q"});
  std::ostringstream out, err;
  const int code = run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

/// The copaint executable itself (what forks workers or writes to a real stdout), its stdout
/// into `stdout_path` (a temporary file by default; /dev/full for a full disk).
struct How {
  std::string stdout_path;       ///< default: a temporary file; "/dev/full": a full disk
  rlim_t fsize = RLIM_INFINITY;  ///< RLIMIT_FSIZE for it and its children (gnuplot)
  uid_t uid = 0;                 ///< run as this user (when root): a read-only folder for root
};

Result bin(std::vector<std::string> args, How how = {}) {
  std::string stdout_path = how.stdout_path;
  static int counter = 0;
  const std::string log =
      (fs::temp_directory_path() /
       ("copaint_trust_log_" + std::to_string(::getpid()) + "_" + std::to_string(++counter)))
          .string();
  const bool own_out = stdout_path.empty();
  if (own_out) stdout_path = log + ".out";
  args.insert(args.begin(), {COPAINT_BIN, "--device", "cpu", "--threads", "1", "-q"});
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (how.uid != 0 && (::setgid(how.uid) != 0 || ::setuid(how.uid) != 0)) std::_Exit(125);
    ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal, as ENOSPC would be (inherited)
    if (how.fsize != RLIM_INFINITY) {
      const struct rlimit lim = {how.fsize, how.fsize};
      ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    if (!std::freopen(stdout_path.c_str(), "w", stdout)) std::_Exit(126);
    if (!std::freopen((log + ".err").c_str(), "w", stderr)) std::_Exit(126);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  Result r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
           own_out ? slurp(stdout_path) : "", slurp(log + ".err")};
  if (own_out) fs::remove(stdout_path);
  fs::remove(log + ".err");
  return r;
}

void expect_error(const Result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.out << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << needle << ": " << r.err;
}

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_trust_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// A random 32x32 image file.
std::string write_random_image(const fs::path& path, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  write_image(path.string(), at::rand({3, 32, 32}, gen).mul(2).sub(1));
  return path.string();
}

/// A one-cell grid on the analytic model (blended, half mask, 2 images, 2 samples) into `dir`.
std::string tiny_grid(const fs::path& dir) {
  fs::create_directories(dir / "imgs");
  for (int i = 0; i < 2; ++i)
    write_random_image(dir / "imgs" / ("img" + std::to_string(i) + ".png"), 10 + i);
  const std::string ini = (dir / "tiny.ini").string();
  std::ofstream(ini) << "name = tiny\nmodel = gaussian\ndataset = folder\nmethods = blended\n"
                        "masks = half\nseeds = 3\nsamples = 2\nmetrics = psnr\n\n[folder]\nroot = "
                     << (dir / "imgs").string()
                     << "\nsize = 32\n\n[gaussian]\nimage_size = 32\nstd = 0.6\n\n[blended]\n"
                        "respacing = 5\n";
  return ini;
}

void save_noise(const fs::path& path, const at::Tensor& x) {
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(x));
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> inpaint_args(const std::string& img, const fs::path& out) {
  return {"inpaint",
          "--method",
          "blended",
          "--model",
          "gaussian",
          "--set",
          "gaussian.image_size=32",
          "--set",
          "blended.respacing=5",
          "--image",
          img,
          "--mask",
          "half",
          "--out",
          out.string()};
}

std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(TrustChecks, GridInputColumnShowsTheKnownPixels) {
  const fs::path dir = temp_dir("grid");
  ASSERT_EQ(cli({"run", tiny_grid(dir), "--out", (dir / "res").string()}).code, 0);
  const Result r =
      cli({"export", (dir / "res").string(), "--grid", "--out", (dir / "grid.png").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  // Tiles of 96 pixels after a 110-pixel label column and a 28-pixel header, 4 apart.
  const at::Tensor grid = read_image((dir / "grid.png").string(), 3);
  const at::Tensor ref = grid.slice(1, 28, 124).slice(2, 110, 206);
  const at::Tensor input = grid.slice(1, 28, 124).slice(2, 210, 306);
  const double grey = 128 / 127.5 - 1;
  const at::Tensor same = (input - ref).abs().amax(0).lt(1e-6);
  const at::Tensor is_grey = (input - grey).abs().amax(0).lt(1e-6);
  // The half mask: half the tile is the reference, the other half grey (it was all grey).
  EXPECT_NEAR(same.to(at::kFloat).mean().item<double>(), 0.5, 0.05);
  EXPECT_NEAR(is_grey.to(at::kFloat).mean().item<double>(), 0.5, 0.05);
  fs::remove_all(dir);
}

TEST(TrustChecks, ExportGridSelectionsMatchingNothingAreErrors) {
  const fs::path dir = temp_dir("select");
  ASSERT_EQ(cli({"run", tiny_grid(dir), "--out", (dir / "res").string()}).code, 0);
  const std::vector<std::string> base = {"export", (dir / "res").string(), "--grid", "--out",
                                         (dir / "grid.png").string()};
  expect_error(cli(plus(base, {"--images", "99"})), 2,
               "no stored sample of image 99 (stored "
               "images: 0, 1)");
  expect_error(cli(plus(base, {"--images", "0,99"})), 2, "image 99");
  expect_error(cli(plus(base, {"--seed", "5"})), 2, "no stored seed 5 (stored seeds: 3)");
  expect_error(cli(plus(base, {"--sample-index", "7"})), 2,
               "--sample-index 7 and seed 3 among the images, masks and methods selected (stored "
               "sample indexes: 0, 1)");
  expect_error(cli(plus(base, {"--masks", "nosuch"})), 1, "no stored samples");
  EXPECT_FALSE(fs::exists(dir / "grid.png"));
  const Result ok = cli(plus(base, {"--images", "1", "--seed", "3", "--sample-index", "1"}));
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("(3 tiles)"), std::string::npos) << ok.out;
  fs::remove_all(dir);
}

TEST(TrustChecks, InitNoiseIsValidated) {
  const fs::path dir = temp_dir("noise");
  const std::string img = write_random_image(dir / "img.png", 1);
  const auto with_noise = [&](const at::Tensor& x, const std::string& name) {
    save_noise(dir / (name + ".pt"), x);
    return cli(
        plus(inpaint_args(img, dir / name), {"--init-noise", (dir / (name + ".pt")).string()}));
  };
  expect_error(with_noise(at::zeros({0, 3, 32, 32}), "empty"), 1, "holds no sample (N = 0)");
  at::Tensor x = at::randn({2, 3, 32, 32});
  x[1][0][3][4] = std::numeric_limits<float>::quiet_NaN();
  expect_error(with_noise(x, "nan"), 1, "NaN or infinite");
  x[1][0][3][4] = std::numeric_limits<float>::infinity();
  expect_error(with_noise(x, "inf"), 1, "NaN or infinite");
  x[1][0][3][4] = 1e30f;
  expect_error(with_noise(x, "huge"), 1, "holds values up to |x| = 1.0000000");
  EXPECT_FALSE(fs::exists(dir / "huge"));  // refused before anything is written
  x[1][0][3][4] = 0.5f;
  const Result ok = with_noise(x, "ok");
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(fs::exists(dir / "ok" / "sample_1.png"));
  fs::remove_all(dir);
}

TEST(TrustChecks, InpaintSamplesAboveTheBoundNeedAllowLarge) {
  const fs::path dir = temp_dir("samples");
  const std::string img = write_random_image(dir / "img.png", 1);
  expect_error(cli(plus(inpaint_args(img, dir / "o"), {"--samples", "100000"})), 2,
               "--samples 100000 is above 10000");
  EXPECT_FALSE(fs::exists(dir / "o"));
  const Result help = cli({"inpaint", "--help"});
  EXPECT_NE(help.out.find("above 10000 with --allow-large"), std::string::npos);
  fs::remove_all(dir);
}

/// A PNG whose header declares `w` x `h` (its data cut short: never decoded).
void write_declared_png(const fs::path& path, uint32_t w, uint32_t h) {
  std::string b = "\x89PNG\r\n\x1a\n";
  b += std::string("\0\0\0\x0dIHDR", 8);
  for (uint32_t v : {w, h}) {
    for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((v >> s) & 0xff);
  }
  b += std::string("\x08\x02\0\0\0\0\0\0\0", 9);
  std::ofstream(path, std::ios::binary) << b;
}

TEST(TrustChecks, ImagesDeclaringHugeSizesAreRefusedBeforeDecoding) {
  const fs::path dir = temp_dir("huge");
  write_declared_png(dir / "huge.png", 20000, 20000);
  try {
    read_image((dir / "huge.png").string(), 3);
    ADD_FAILURE() << "read a PNG declaring 20000x20000";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("declares 20000x20000 pixels"), std::string::npos)
        << e.what();
  }
  expect_error(cli(inpaint_args((dir / "huge.png").string(), dir / "o")), 1,
               "pass --allow-large to read it");
  EXPECT_THROW(read_mask((dir / "huge.png").string()), InputError);
  // A real image of ordinary size reads as before.
  write_random_image(dir / "small.png", 3);
  EXPECT_EQ(read_image((dir / "small.png").string(), 3).size(1), 32);
  fs::remove_all(dir);
}

TEST(TrustChecks, JobsAreBoundedByCoresAndWorkItems) {
  const fs::path dir = temp_dir("jobs");
  const std::string ini = tiny_grid(dir);
  expect_error(cli({"run", ini, "--out", (dir / "a").string(), "--jobs", "1000"}), 2,
               "--jobs 1000 is above this machine's");
  EXPECT_FALSE(fs::exists(dir / "a" / "results.shard-0-of-1000.sqlite"));
  // 2 images x 1 sample = 2 work items: --jobs 9 (allowed above the cores) starts 2 workers.
  const Result r = bin({"--allow-large", "run", ini, "--out", (dir / "b").string(), "--jobs", "9",
                        "--set", "samples=1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 workers merged"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "b" / "results.shard-1-of-2.sqlite"));
  EXPECT_FALSE(fs::exists(dir / "b" / "results.shard-2-of-9.sqlite"));
  fs::remove_all(dir);
}

TEST(TrustChecks, InpaintIntoAnEarlierRunsFolderKeepsOnlyTheNewSamples) {
  const fs::path dir = temp_dir("reuse");
  const std::string img = write_random_image(dir / "img.png", 1);
  const fs::path out = dir / "o";
  ASSERT_EQ(cli(plus(inpaint_args(img, out), {"--samples", "3", "--save-tensors"})).code, 0);
  ASSERT_TRUE(fs::exists(out / "sample_2.png"));
  ASSERT_TRUE(fs::exists(out / "samples.pt"));
  std::ofstream(out / "notes.txt") << "mine\n";
  std::ofstream(out / "sample_x.png") << "not ours\n";
  ASSERT_EQ(cli(inpaint_args(img, out)).code, 0);
  EXPECT_TRUE(fs::exists(out / "sample_0.png"));
  EXPECT_FALSE(fs::exists(out / "sample_1.png"));
  EXPECT_FALSE(fs::exists(out / "sample_2.png"));
  EXPECT_FALSE(fs::exists(out / "samples.pt"));
  EXPECT_TRUE(fs::exists(out / "notes.txt"));  // not an inpaint output: left alone
  EXPECT_TRUE(fs::exists(out / "sample_x.png"));
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Write failures: standard output and figures.

TEST(TrustChecks, AFullStandardOutputIsAnError) {
  const fs::path dir = temp_dir("stdout");
  const std::string ini = tiny_grid(dir);
  ASSERT_EQ(cli({"run", ini, "--out", (dir / "res").string()}).code, 0);
  const How full{"/dev/full"};
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list"}, {"run", ini, "--dry-run"}, {"report", (dir / "res").string()}}) {
    const Result r = bin(args, full);
    EXPECT_EQ(r.code, 1) << args.front() << ": " << r.err;
    EXPECT_NE(r.err.find("copaint: cannot write the standard output: No space left on device"),
              std::string::npos)
        << args.front() << ": " << r.err;
  }
  EXPECT_EQ(bin({"list"}).code, 0);
  fs::remove_all(dir);
}

bool have_gnuplot() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

TEST(TrustChecks, PlotsOntoAFullDiskAreAnErrorAndAQuoteInTheFolderWorks) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot not installed (Debian: gnuplot-nox)";
  const fs::path dir = temp_dir("plots");
  ASSERT_EQ(cli({"run", tiny_grid(dir), "--out", (dir / "res").string()}).code, 0);
  // A gnuplot whose files may not grow beyond 4096 bytes (as on a full disk; EFBIG, not a
  // signal): the figures are cut short, and gnuplot still exits 0.
  const fs::path full_gnuplot = dir / "gnuplot-full";
  std::ofstream(full_gnuplot) << "#!/bin/sh\ntrap '' XFSZ\nulimit -f 8\nexec gnuplot \"$@\"\n";
  fs::permissions(full_gnuplot, fs::perms::owner_all);
  const ResultSet rs = load_results(find_result_dbs((dir / "res").string()));
  PlotOptions limited;
  limited.gnuplot = full_gnuplot.string();
  try {
    write_ablation_plots(rs, limited, (dir / "full").string(), true);
    ADD_FAILURE() << "figures cut short were reported as written";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing, empty or cut short"), std::string::npos)
        << e.what();
  }
  // A quote in the folder's name reaches gnuplot intact (it broke the shell's cd).
  const fs::path quoted = dir / "it's plots";
  const Result ok = bin({"report", (dir / "res").string(), "--plots", quoted.string()});
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_GT(fs::file_size(quoted / "compare_psnr.pdf"), 1000u);
  // Bars start at 0: PSNR near 9 must not get an axis from 8.
  const std::string gp = slurp(quoted / "compare_psnr.gp");
  EXPECT_NE(gp.find("set yrange [0:*]"), std::string::npos) << gp;
  // A missing gnuplot is named as such.
  PlotOptions missing;
  missing.gnuplot = (dir / "no-gnuplot").string();
  try {
    write_ablation_plots(rs, missing, (dir / "none").string(), true);
    ADD_FAILURE() << "no error without gnuplot";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not found (Debian: apt-get install gnuplot-nox)"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Unclear errors made clear.

TEST(TrustChecks, ReadOnlyResultsFolderIsReportedAndExported) {
  const fs::path dir = temp_dir("readonly");
  ASSERT_EQ(cli({"run", tiny_grid(dir), "--out", (dir / "res").string()}).code, 0);
  const fs::path out = dir / "out";
  fs::create_directories(out);
  fs::permissions(out, fs::perms::all);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec |
                           fs::perms::group_read | fs::perms::group_exec);
  // Root writes anywhere: the reader is then `nobody`; otherwise the folder is made read-only.
  How reader;
  if (::geteuid() == 0) {
    reader.uid = 65534;
    // The checkout may sit in a folder that only root can enter (exec fails: 127).
    if (bin({"--version"}, reader).code == 127) {
      fs::remove_all(dir);
      GTEST_SKIP() << "user nobody cannot run " << COPAINT_BIN
                   << " (a folder above it is closed to others); this case needs a non-root reader";
    }
  } else {
    fs::permissions(dir / "res",
                    fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                    fs::perm_options::remove);
  }
  const Result rep = bin({"report", (dir / "res").string()}, reader);
  EXPECT_EQ(rep.code, 0) << rep.err;
  EXPECT_NE(rep.out.find("| blended |"), std::string::npos) << rep.out;
  const Result grid =
      bin({"export", (dir / "res").string(), "--grid", "--out", (out / "g.png").string()}, reader);
  EXPECT_EQ(grid.code, 0) << grid.err;
  EXPECT_TRUE(fs::exists(out / "g.png"));
  EXPECT_FALSE(fs::exists(dir / "res" / "results.sqlite-shm"));
  fs::permissions(dir / "res", fs::perms::owner_all, fs::perm_options::add);
  fs::remove_all(dir);
}

TEST(TrustChecks, SettingsFilesThatAreNotIniTextAreClearErrors) {
  const fs::path dir = temp_dir("ini");
  const std::string ini = tiny_grid(dir);
  // A UTF-8 byte order mark is dropped.
  const std::string text = slurp(ini);
  std::ofstream(dir / "bom.ini") << "\xEF\xBB\xBF" << text;
  const Result bom = cli({"run", (dir / "bom.ini").string(), "--dry-run"});
  EXPECT_EQ(bom.code, 0) << bom.err;
  // Binary bytes: named by code and line, never echoed; a NUL does not cut the message.
  std::ofstream(dir / "bin.ini", std::ios::binary) << "name = x\n"
                                                   << std::string("mo\0del\x01\x02\xff = y\n", 14);
  const Result binary = cli({"run", (dir / "bin.ini").string(), "--dry-run"});
  expect_error(binary, 1, "bin.ini': not a text file (byte 0x00 on line 2)");
  for (char c : binary.err) EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << binary.err;
  // A folder, as the experiment or as --config.
  expect_error(cli({"run", dir.string(), "--dry-run"}), 1, "is a folder, not a file");
  expect_error(cli({"run", ini, "--config", dir.string(), "--dry-run"}), 1,
               "config file '" + dir.string() + "' is a folder");
  expect_error(cli({"inpaint", "--model", "gaussian", "--image", "x.png", "--mask", "half", "--out",
                    (dir / "o").string(), "--config", dir.string()}),
               1, "is a folder");
  // The reference's YAML given as an experiment, and YAML that is not the reference's.
  std::ofstream(dir / "ref.yaml") << "algorithm: o_ddim\n";
  expect_error(cli({"run", (dir / "ref.yaml").string()}), 2, "copaint import-config");
  std::ofstream(dir / "other.yaml") << "foo: 1\n";
  expect_error(cli({"import-config", (dir / "other.yaml").string()}), 2, "no 'algorithm' key");
  expect_error(cli({"import-config", dir.string()}), 1, "is a folder");
  fs::remove_all(dir);
}

TEST(TrustChecks, AnEmptyResultsDatabaseAsksForTheMergeAgain) {
  const fs::path dir = temp_dir("empty");
  std::ofstream(dir / "results.sqlite").flush();
  expect_error(cli({"report", dir.string()}), 1,
               "is empty (a merge or run stopped before its "
               "first write): rerun `copaint merge`");
  fs::remove_all(dir);
}

TEST(TrustChecks, CodecWarningsDoNotLeakOntoStderr) {
  const fs::path dir = temp_dir("libpng");
  const std::string png = write_random_image(dir / "ok.png", 1);
  // An ancillary chunk with a wrong CRC after IHDR: libpng warns ("tEXt: CRC error") and decodes.
  std::string bytes = slurp(png);
  const std::string chunk = std::string("\0\0\0\x04tEXta=bc", 12) + std::string("\0\0\0\0", 4);
  bytes.insert(33, chunk);
  std::ofstream(dir / "warn.png", std::ios::binary) << bytes;
  const Result r = bin(inpaint_args((dir / "warn.png").string(), dir / "o"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("libpng"), std::string::npos) << r.err;
  // A cut file: one error line that carries what the decoder said.
  std::ofstream(dir / "cut.png", std::ios::binary) << slurp(png).substr(0, 60);
  const Result cut = bin(inpaint_args((dir / "cut.png").string(), dir / "c"));
  EXPECT_EQ(cut.code, 1) << cut.err;
  EXPECT_NE(cut.err.find("not a decodable image"), std::string::npos) << cut.err;
  EXPECT_EQ(cut.err.find("\nlibpng"), std::string::npos) << cut.err;
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Smaller silent ones.

TEST(TrustChecks, SettingsThatDoNothingOrFailLaterAreRefusedUpFront) {
  const fs::path dir = temp_dir("settings");
  const std::string ini = tiny_grid(dir);
  expect_error(cli({"run", ini, "--dry-run", "--set", "methods=copaint", "--set",
                    "copaint.time_travel_filter=bogus"}),
               2, "copaint.time_travel_filter");
  EXPECT_EQ(cli({"run", ini, "--dry-run", "--set", "methods=copaint", "--set",
                 "copaint.time_travel_filter=lastn-200"})
                .code,
            0);
  // A super-resolution scale that does not divide the model's 32 pixels fails the dry-run too.
  const std::vector<std::string> sr = {
      "run", ini, "--dry-run", "--set", "methods=ddnm", "--set", "ddnm.mode=super_resolution"};
  for (const char* scale : {"3", "64"}) {
    expect_error(cli(plus(sr, {"--set", std::string("ddnm.scale=") + scale})), 2,
                 "--set ddnm.scale: ddnm.scale " + std::string(scale) +
                     " does not divide the model's image size 32");
  }
  const Result four = cli(plus(sr, {"--set", "ddnm.scale=4"}));
  EXPECT_EQ(four.code, 0) << four.err;
  fs::remove_all(dir);
}

TEST(TrustChecks, ARuleBrokenByASetValueIsBlamedOnTheSet) {
  const fs::path dir = temp_dir("blame");
  const std::string ini = tiny_grid(dir);
  std::ofstream(ini, std::ios::app) << "\n[copaint_tt]\njump_length = 10\n\n[copaint_fast]\n"
                                       "steps = 100\n";
  // jump_length (a line of the file) must be below the steps that --set respacing leaves.
  expect_error(cli({"run", ini, "--dry-run", "--set", "methods=copaint_tt", "--set",
                    "copaint_tt.respacing=10"}),
               2, "copaint: --set copaint_tt.respacing: option 'copaint_tt.jump_length'");
  // steps = 100 (the file) exceeds what --set respacing = 50 leaves: both places named.
  expect_error(cli({"run", ini, "--dry-run", "--set", "methods=copaint_fast", "--set",
                    "copaint_fast.respacing=50"}),
               2, "copaint: --set copaint_fast.respacing (with " + ini + ":");
  // A range error of a line of the file stays on that line, whatever else is --set.
  std::ofstream(ini, std::ios::app) << "\n[copaint]\nG = 5000\n";
  expect_error(
      cli({"run", ini, "--dry-run", "--set", "methods=copaint", "--set", "copaint.lr_xt=0.1"}), 2,
      "copaint: " + ini + ":");
  fs::remove_all(dir);
}

TEST(TrustChecks, TimingTablePrintsNoPeakMemoryItDidNotMeasure) {
  const fs::path dir = temp_dir("timing");
  ASSERT_EQ(cli({"run", tiny_grid(dir), "--out", (dir / "res").string()}).code, 0);
  const Result r = cli({"report", (dir / "res").string(), "--timing"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto at = r.out.find("timing per sample");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string timing = r.out.substr(at);
  EXPECT_NE(timing.find("| blended | 4 | 0 |"), std::string::npos) << timing;
  EXPECT_NE(timing.find(" | - |"), std::string::npos) << timing;
  EXPECT_EQ(timing.find("0.0 |\n"), std::string::npos) << timing;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
