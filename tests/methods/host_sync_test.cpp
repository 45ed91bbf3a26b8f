// The host-sync budget of every method, counted on the CPU by a RecordFunction callback between
// the method's on_step calls, on the tiny UNet. On the CPU no copy happens, so the test counts
// the calls that would transfer on CUDA:
//  - reads: the deliberate device-to-host copies (the copaint::to_host scope,
//    framework/core/transfer.h) and .item() calls made by our code (aten::item /
//    aten::_local_scalar_dense outside any other op): each blocks the host on CUDA;
//  - moves: tensor moves with an explicit device made by our code (aten::to with a Device
//    argument outside any other op): a host-device copy on CUDA unless the tensor is there;
//  - uploads: host data sent to the device on purpose (the copaint::upload scope: the per-sample
//    noise drawn on CPU generators, resampled indices), staged in pinned memory and copied
//    without blocking the host on CUDA.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "datasets/masks.h"
#include "framework/core/registry.h"
#include "framework/core/transfer.h"
#include "framework/nn/denoisers.h"
#include "methods/method.h"
#include "tests/tiny_fixtures.h"

namespace copaint {
namespace {

std::atomic<int64_t> g_reads{0}, g_moves{0}, g_uploads{0};
std::thread::id g_main;
thread_local int g_depth = 0;  ///< ops open on this thread: > 0 means called by another op

bool has_device_argument(const at::RecordFunction& fn) {
  for (const c10::IValue& v : fn.inputs()) {
    if (v.isDevice()) return true;
  }
  return false;
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  const int depth = g_depth++;
  if (std::this_thread::get_id() != g_main) return nullptr;
  const char* name = fn.name();
  if (std::strcmp(name, kToHostScope) == 0) {
    ++g_reads;
  } else if (std::strcmp(name, kUploadScope) == 0) {
    ++g_uploads;
  } else if (depth == 0 && (std::strcmp(name, "aten::item") == 0 ||
                            std::strcmp(name, "aten::_local_scalar_dense") == 0)) {
    ++g_reads;
  } else if (depth == 0 && std::strcmp(name, "aten::to") == 0 && has_device_argument(fn)) {
    ++g_moves;
  }
  return nullptr;
}

void on_exit(const at::RecordFunction&, at::ObserverContext*) { --g_depth; }

struct Counts {
  double reads = 0, moves = 0, uploads = 0;  ///< per outer step
  double forwards = 0;                       ///< UNet evaluations per outer step
  double expected = 0;  ///< expected_forwards() per outer step (no backtracking)
  int64_t steps = 0;
};

Counts count_run(const std::string& method_name, const Options& options) {
  register_builtin_methods();
  UNetDenoiser& model = fixtures::tiny_model();
  const int64_t size = model.image_size();
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor image = (at::rand({2, 3, size, size}, g) * 1.6 - 0.8);
  const at::Tensor mask =
      half_mask(size, size).unsqueeze(0).expand({2, 1, size, size}).to(at::kFloat);
  auto method = Registry<Method>::global().create(method_name, options);
  InpaintInput in;
  in.image = image;
  in.mask = mask;
  in.generators = {at::make_generator<at::CPUGeneratorImpl>(3),
                   at::make_generator<at::CPUGeneratorImpl>(4)};
  // A first run makes the process's one-time uploads (schedule tables); the second is counted.
  method->run(model, in);
  Counts c;
  in.on_step = [&](int64_t, int64_t) { ++c.steps; };
  g_reads = 0;
  g_moves = 0;
  g_uploads = 0;
  g_main = std::this_thread::get_id();
  const auto handle =
      at::addGlobalCallback(at::RecordFunctionCallback(on_enter, on_exit).needsInputs(true));
  const InpaintOutput out = method->run(model, in);
  at::removeCallback(handle);
  if (c.steps > 0) {
    const auto per_step = [&](int64_t n) {
      return static_cast<double>(n) / static_cast<double>(c.steps);
    };
    c.reads = per_step(g_reads);
    c.moves = per_step(g_moves);
    c.uploads = per_step(g_uploads);
    c.forwards = per_step(out.evals.forwards);
    c.expected = per_step(method->expected_forwards(model.num_train_timesteps()));
  }
  std::string settings = options.canonical();
  std::replace(settings.begin(), settings.end(), '\n', ' ');
  std::printf(
      "host-sync %-11s %-42s steps %3lld  reads/step %5.2f  moves/step %5.2f  "
      "uploads/step %5.2f\n",
      method_name.c_str(), settings.c_str(), static_cast<long long>(c.steps), c.reads, c.moves,
      c.uploads);
  return c;
}

// The budget (issue 27): at most one blocking read per denoising step without gradients, plus
// one per run (resample's final pick of a particle); for CoPaint one per line-search round (each
// gradient step's backtracking decision, one more per backtracking round: the rounds are the UNet
// evaluations after each step's first) plus one. No tensor is moved by an explicit device inside
// the steps: tables live on the device and host data goes through upload(); one move per run is
// the mask's, at the start. The uploads (noise drawn on CPU generators, resampled indices;
// non-blocking on CUDA) are held at today's counts.
TEST(HostSync, BudgetPerStep) {
  struct Case {
    std::string method;
    Options options;
    double uploads;  ///< ceiling per step
  };
  const std::vector<Case> cases = {
      {"blended", {{"respacing", "8"}}, 1.15},
      {"resample", {{"respacing", "8"}, {"particles", "3"}}, 2.45},
      {"repaint", {{"respacing", "8"}, {"jump_length", "2"}, {"jump_n_sample", "2"}}, 1.70},
      {"ddnm", {{"respacing", "8"}}, 1.15},
      {"ddrm", {{"respacing", "8"}}, 1.15},
      {"dps", {{"respacing", "8"}}, 1.30},
      {"copaint", {{"respacing", "8"}, {"steps", "8"}, {"G", "2"}}, 0.15},
      {"copaint_tt", {{"respacing", "8"}, {"steps", "8"}, {"G", "2"}, {"jump_length", "2"}}, 0.40},
  };
  for (const Case& c : cases) {
    const Counts n = count_run(c.method, c.options);
    ASSERT_GT(n.steps, 0) << c.method;
    const auto steps = static_cast<double>(n.steps);
    // CoPaint (G = 2): each denoising step costs 1 + G forwards without backtracking, so the
    // line-search rounds are the forwards beyond expected / (1 + G) per step.
    const bool gradients = c.method.rfind("copaint", 0) == 0;
    const double rounds = (n.forwards - n.expected / 3) * steps;
    const double reads_per_run = gradients ? rounds + 1 : steps + 1;
    EXPECT_LE(n.reads * steps, reads_per_run + 1e-9) << c.method;
    EXPECT_LE(n.moves * steps, 1 + 1e-9) << c.method;
    EXPECT_LE(n.uploads, c.uploads + 1e-9) << c.method;
  }
}

// The counter sees what it claims to: a read, an explicit move and an upload in our code count,
// the same ops inside another op do not.
TEST(HostSync, CounterSeesReadsMovesAndUploads) {
  g_main = std::this_thread::get_id();
  g_reads = 0;
  g_moves = 0;
  g_uploads = 0;
  const auto handle =
      at::addGlobalCallback(at::RecordFunctionCallback(on_enter, on_exit).needsInputs(true));
  const at::Tensor x = at::ones({3});
  (void)x.sum().item<float>();
  (void)to_host(x);
  (void)x.to(at::Device(at::kCPU));
  (void)upload(x, at::Device(at::kCPU), at::kDouble);
  (void)at::multinomial(x, 2, false);  // reads its input inside the op: not ours
  at::removeCallback(handle);
  EXPECT_EQ(g_reads.load(), 2);
  EXPECT_EQ(g_moves.load(), 1);
  EXPECT_EQ(g_uploads.load(), 1);
}

}  // namespace
}  // namespace copaint
