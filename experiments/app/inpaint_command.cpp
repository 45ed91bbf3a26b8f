// `copaint inpaint`: fills the unknown region of one image with a registered method and model,
// writing the samples as PNG files (and, on request, the tensors as a torch.load-able file).
#include "experiments/app/inpaint_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <boost/program_options.hpp>

#include "datasets/mask.h"
#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/experiment/config.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/inpaint_batch.h"
#include "experiments/imageio/image_io.h"
#include "framework/checkpoint/checkpoint.h"
#include "framework/core/atomic_file.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/torch_compat.h"
#include "framework/nn/models.h"
#include "methods/method.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

po::options_description inpaint_options() {
  po::options_description d(
      "usage: copaint [--device D] inpaint --model MODEL --image IMG --mask MASK --out DIR "
      "[options]\n\nOptions");
  d.add_options()("help,h", "print this help")("method",
                                               po::value<std::string>()->default_value("copaint"),
                                               "inpainting method (`copaint list methods`)")(
      "model", po::value<std::string>(),
      "model: celebahq256 | imagenet256 | adm | diffusers | ddpm_celebahq256 | gaussian | ... "
      "(`copaint list models`); required")("checkpoint", po::value<std::string>(),
                                           "shorthand for --set <model>.checkpoint=FILE")(
      "image", po::value<std::string>(),
      "input image (PNG, JPEG, ...); fitted to the model's size: shorter side resized, centre "
      "cropped; required")(
      "mask", po::value<std::string>(),
      "a mask image (non-zero = known pixel) or a registered mask name (`copaint list masks`: "
      "half, line, ...); required")("mask-invert", po::bool_switch(),
                                    "mask image: zero = known pixel (white = hole)")(
      "mask-resize", po::bool_switch(),
      "resize a mask image whose size differs from the image's (nearest neighbour, aspect kept, "
      "centre crop); without it that is an error")(
      "mask-seed", po::value<int64_t>()->default_value(0), "seed of a random registered mask")(
      "class-label", po::value<int64_t>()->default_value(-1),
      "class label for a class-conditional model (required for imagenet256)")(
      "init-noise", po::value<std::string>(),
      "initial noise x_T: a torch.save or .safetensors file holding a [N,C,H,W] tensor or a "
      "dict with key x_T (e.g. a samples.pt from --save-tensors); sets --samples; N >= 1, every "
      "value finite with |x| <= 100 (standard normal noise)")(
      "samples", po::value<int64_t>(),
      "number of samples (default 1, or N of --init-noise; above 10000 with --allow-large)")(
      "batch-size", po::value<int64_t>()->default_value(0),
      "samples per batch (0 = all at once); results do not depend on it")(
      "seed", po::value<int64_t>()->default_value(0),
      "sample i draws its noise from a generator seeded with seed*1000003+i")(
      "out", po::value<std::string>(), "output folder (created); required")(
      "save-tensors", po::bool_switch(),
      "also write DIR/samples.pt: a dict {samples [N,C,H,W], x_T, image, mask} in torch.save's "
      "zip format (torch.load in Python; --init-noise reads its x_T)")(
      "config", po::value<std::vector<std::string>>()->composing(),
      "INI settings file (repeatable; later files win)")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "a setting key=value (repeatable; wins over --config), e.g. copaint.G=5");
  return d;
}

const char* kInpaintNotes =
    "\nSettings are scoped by the method's and the model's names: `--set copaint.G=5`,\n"
    "`--set adm.num_channels=64`, `--set celebahq256.checkpoint=FILE` (and, for a registered\n"
    "mask with options, by the mask's name: `--set random.known_fraction=0.3`). A key with any\n"
    "other prefix is an error. `copaint list` shows every key and default.\n"
    "\nWrites DIR/sample_<i>.png, DIR/input.png (the image as the model sees it), DIR/mask.png\n"
    "(white = known), DIR/masked.png (unknown pixels grey), DIR/settings.ini (the resolved\n"
    "method and model settings, usable with --config), and with --save-tensors DIR/samples.pt.\n"
    "Samples of an earlier run in DIR (sample_*.png, samples.pt) are removed first, with a\n"
    "warning, so that DIR holds one run. Prints the UNet forward and backward passes (each over a\n"
    "whole batch) and the time spent.\n";

std::string size_str(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

/// Reads --init-noise: a tensor, or a dict with key x_T.
at::Tensor read_init_noise(const std::string& path) {
  const c10::IValue v = read_torch_file(path);
  at::Tensor t;
  if (v.isTensor()) {
    t = v.toTensor();
  } else if (v.isGenericDict()) {
    std::string keys;
    for (const auto& item : v.toGenericDict()) {
      if (!item.key().isString()) continue;
      const std::string k = item.key().toStringRef();
      keys += (keys.empty() ? "" : ", ") + k;
      if (k == "x_T") {
        if (!item.value().isTensor())
          throw InputError("init noise '" + path + "': x_T is not a tensor");
        t = item.value().toTensor();
      }
    }
    if (!t.defined()) {
      throw InputError("init noise '" + path + "': a dict without key 'x_T' (keys: " +
                       (keys.empty() ? std::string("none") : keys) + ")");
    }
  } else {
    throw InputError("init noise '" + path + "': expected a tensor or a dict with key x_T");
  }
  if (t.dim() == 3) t = t.unsqueeze(0);
  if (t.dim() != 4) {
    throw InputError("init noise '" + path + "': expected [N,C,H,W], got " +
                     std::to_string(t.dim()) + " dims");
  }
  if (!at::isFloatingType(t.scalar_type())) {
    throw InputError("init noise '" + path + "': not a floating-point tensor");
  }
  return t.to(at::kFloat).contiguous();
}

/// Atomic (temporary file, fsync, rename): a kill or a full disk never leaves a part.
void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

/// What `copaint inpaint` was asked, typed; strings stay at the edge (parse_request).
struct InpaintRequest {
  std::string method, model, mask, image, out, init_noise;
  Options method_settings, model_settings, mask_settings;
  bool mask_is_name = false, mask_invert = false, mask_resize = false, save_tensors = false;
  int64_t batch_size = 0, seed = 0, samples = -1, mask_seed = 0, class_label = -1;  // -1: unset
};

InpaintRequest parse_request(const po::variables_map& vm, const CommandContext& ctx) {
  const auto& models = Registry<Denoiser>::global();
  const auto& methods = Registry<Method>::global();
  const auto& masks = Registry<MaskGenerator>::global();
  for (const char* req : {"model", "image", "mask", "out"}) {
    if (!vm.count(req)) {
      std::string extra;
      if (std::string(req) == "model") extra = " (valid: " + join_names(models.names()) + ")";
      throw UsageError(std::string("inpaint: --") + req + " is required" + extra);
    }
  }
  InpaintRequest r;
  r.method = vm["method"].as<std::string>();
  r.model = vm["model"].as<std::string>();
  r.mask = vm["mask"].as<std::string>();
  r.image = vm["image"].as<std::string>();
  r.out = vm["out"].as<std::string>();
  methods.at(r.method);  // unknown names fail here, listing the valid ones
  models.at(r.model);
  r.mask_is_name = masks.contains(r.mask);

  // Settings: files, then --set, then --checkpoint; every key must be scoped by a known prefix.
  auto list = [&](const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
  };
  Options settings = resolve_settings(list("config"), list("set"));
  if (vm.count("checkpoint"))
    settings.set(r.model + ".checkpoint", vm["checkpoint"].as<std::string>());
  if (!ctx.precision.empty()) settings.set(r.model + ".precision", ctx.precision);
  std::vector<std::string> prefixes = {r.method, r.model};
  if (r.mask_is_name && !masks.at(r.mask).options.empty()) prefixes.push_back(r.mask);
  for (const auto& [key, value] : settings.values()) {
    const auto dot = key.find('.');
    const std::string prefix = dot == std::string::npos ? "" : key.substr(0, dot);
    if (std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end()) {
      throw UsageError("setting '" + key + "' is not scoped by the method or the model; valid " +
                       "prefixes: " + join_names(prefixes) + " (e.g. " + r.method + ".KEY)");
    }
  }
  r.method_settings = methods.resolve(r.method, settings.scope(r.method));
  r.model_settings = models.resolve(r.model, settings.scope(r.model));
  r.mask_settings = settings.scope(r.mask);

  r.batch_size = vm["batch-size"].as<int64_t>();
  r.seed = vm["seed"].as<int64_t>();
  if (r.batch_size < 0) throw UsageError("inpaint: --batch-size must be >= 0");
  if (r.seed < 0) throw UsageError("inpaint: --seed must be >= 0");
  if (vm.count("samples")) {
    r.samples = vm["samples"].as<int64_t>();
    if (r.samples < 1) throw UsageError("inpaint: --samples must be >= 1");
    if (r.samples > kMaxSamplesWithoutAllowLarge && !allow_large_values()) {
      throw UsageError("inpaint: --samples " + std::to_string(r.samples) + " is above " +
                       std::to_string(kMaxSamplesWithoutAllowLarge) +
                       " (all samples are held in memory; a bound against typos); pass "
                       "--allow-large to run it");
    }
  }
  r.mask_seed = vm["mask-seed"].as<int64_t>();
  r.mask_invert = vm["mask-invert"].as<bool>();
  r.mask_resize = vm["mask-resize"].as<bool>();
  if (vm.count("init-noise")) r.init_noise = vm["init-noise"].as<std::string>();
  r.class_label = vm["class-label"].as<int64_t>();
  r.save_tensors = vm["save-tensors"].as<bool>();
  return r;
}

/// The image and mask as the model sees them (a mask file fitted to the image, then both to the
/// model's size).
std::pair<at::Tensor, at::Tensor> read_inputs(const InpaintRequest& r, MaskGenerator* mask_gen,
                                              int64_t channels, int64_t size) {
  at::Tensor image = read_image(r.image, channels, 0);
  at::Tensor mask;
  if (mask_gen) {
    image = resize_center_crop(image, size);
    mask = mask_gen->make(size, size, 0, static_cast<uint64_t>(r.mask_seed));
  } else {
    std::error_code exists_ec;
    if (!std::filesystem::exists(r.mask, exists_ec)) {
      throw InputError("mask '" + r.mask + "': no such file, and not a registered mask name (" +
                       join_names(Registry<MaskGenerator>::global().names()) + ")");
    }
    mask = read_mask(r.mask, 0, r.mask_invert);
    const int64_t h = image.size(1), w = image.size(2);
    if (mask.size(1) != h || mask.size(2) != w) {
      if (!r.mask_resize) {
        throw InputError("mask '" + r.mask + "' is " + size_str(mask.size(1), mask.size(2)) +
                         " but image '" + r.image + "' is " + size_str(h, w) +
                         " (use --mask-resize to resize the mask)");
      }
      // Scale to cover the image, then crop like the image's fitting would.
      at::Tensor m = resize_center_crop(mask, std::max(h, w), /*nearest=*/true);
      mask = m.slice(1, (m.size(1) - h) / 2, (m.size(1) - h) / 2 + h)
                 .slice(2, (m.size(2) - w) / 2, (m.size(2) - w) / 2 + w);
    }
    image = resize_center_crop(image, size);
    mask = resize_center_crop(mask, size, /*nearest=*/true).gt(0.5).to(at::kFloat);
  }
  if (mask.sum().item<double>() == 0) log_warn("the mask has no known pixel");
  return {image, mask};
}

/// --init-noise, checked against the model and --samples (undefined without it).
at::Tensor checked_init_noise(const InpaintRequest& r, int64_t channels, int64_t size) {
  if (r.init_noise.empty()) return at::Tensor();
  const at::Tensor x = read_init_noise(r.init_noise);
  if (x.size(1) != channels || x.size(2) != size || x.size(3) != size) {
    throw InputError("init noise '" + r.init_noise + "' is [" + std::to_string(x.size(0)) + "," +
                     std::to_string(x.size(1)) + "," + size_str(x.size(2), x.size(3)) +
                     "], the model needs [N," + std::to_string(channels) + "," +
                     size_str(size, size) + "]");
  }
  if (x.size(0) < 1) throw InputError("init noise '" + r.init_noise + "' holds no sample (N = 0)");
  // x_T is standard normal noise: |x| of a million draws stays below 6; 100 is a typo or garbage.
  constexpr double kMaxAbs = 100;
  if (!at::isfinite(x).all().item<bool>()) {
    throw InputError("init noise '" + r.init_noise + "' holds NaN or infinite values");
  }
  if (const double m = x.abs().max().item<double>(); m > kMaxAbs) {
    throw InputError("init noise '" + r.init_noise + "' holds values up to |x| = " +
                     number_text(m) + "; x_T is standard normal noise (|x| <= 100 expected)");
  }
  if (r.samples > 0 && r.samples != x.size(0)) {
    throw InputError("init noise '" + r.init_noise + "' holds " + std::to_string(x.size(0)) +
                     " samples but --samples is " + std::to_string(r.samples));
  }
  return x;
}

void check_label(const InpaintRequest& r, const Denoiser& model) {
  if (model.num_classes() > 0 && (r.class_label < 0 || r.class_label >= model.num_classes())) {
    throw UsageError("inpaint: model '" + r.model + "' is class-conditional: give --class-label " +
                     "in [0, " + std::to_string(model.num_classes()) + ")");
  }
  if (model.num_classes() == 0 && r.class_label >= 0) {
    throw UsageError("inpaint: model '" + r.model +
                     "' is not class-conditional; drop --class-label");
  }
}

/// Every sample, batch by batch, with the noise it started from and the cost.
struct Sampled {
  at::Tensor samples, x_T;
  EvalCounter evals;
  int64_t batches = 0;
  double seconds = 0;
};

Sampled sample_all(const InpaintRequest& r, Method& method, Denoiser& model,
                   const at::Tensor& image, const at::Tensor& mask, const at::Tensor& init_noise,
                   int64_t n, const c10::Device& device) {
  const int64_t bs = r.batch_size == 0 ? n : std::min(r.batch_size, n);
  Sampled s;
  s.batches = (n + bs - 1) / bs;
  std::vector<at::Tensor> samples, noises;
  std::unique_ptr<ProgressBar> bar;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < n; first += bs) {
    const int64_t b = std::min(bs, n - first);
    InpaintBatch batch;
    for (int64_t i = first; i < first + b; ++i)
      batch.seeds.push_back(inpaint_sample_seed(static_cast<uint64_t>(r.seed), i));
    batch.images = image.unsqueeze(0).expand({b, -1, -1, -1});
    batch.masks = mask.unsqueeze(0);
    if (model.num_classes() > 0) batch.labels = at::full({b}, r.class_label, at::kLong);
    if (init_noise.defined()) batch.x_T = init_noise.narrow(0, first, b);
    batch.draw_x_T = !method.draws_own_initial_noise();
    batch.on_step = [&](int64_t, int64_t total) {
      if (!bar) bar = std::make_unique<ProgressBar>(total * s.batches, "inpaint");
      bar->advance(1);
    };
    const InpaintBatchResult result = run_inpaint_batch(method, model, batch, device);
    s.evals.forwards += result.evals.forwards;
    s.evals.backwards += result.evals.backwards;
    samples.push_back(result.samples);
    if (result.x_T.defined()) noises.push_back(result.x_T);
  }
  if (bar) bar->finish();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.samples = at::cat(samples, 0);
  if (!noises.empty()) s.x_T = at::cat(noises, 0);
  return s;
}

/// Removes the samples of an earlier inpaint in `out` (sample_<i>.png, samples.pt), with a
/// warning: they would otherwise lie beside this run's and look like its own. Other files stay.
void remove_earlier_samples(const std::filesystem::path& out) {
  std::vector<std::filesystem::path> old;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = e.path().filename().string();
    const bool sample = name.rfind("sample_", 0) == 0 && name.size() > 11 &&
                        name.compare(name.size() - 4, 4, ".png") == 0 &&
                        name.find_first_not_of("0123456789", 7) == name.size() - 4;
    if (sample || name == "samples.pt") old.push_back(e.path());
  }
  if (old.empty()) return;
  for (const auto& p : old) {
    if (!std::filesystem::remove(p, ec) || ec)
      throw InputError("cannot remove '" + p.string() + "' of an earlier run: " + ec.message());
  }
  log_warn("inpaint: removed " + std::to_string(old.size()) + " file(s) of an earlier run in '" +
           out.string() + "' (sample_*.png, samples.pt)");
}

/// The output folder and the inputs as seen by the model (before sampling: a bad folder fails
/// before any work).
void write_inputs(const InpaintRequest& r, const at::Tensor& image, const at::Tensor& mask,
                  int64_t n) {
  const std::filesystem::path out = r.out;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) {
    throw InputError("cannot create output folder '" + out.string() + "'");
  }
  remove_earlier_samples(out);
  write_image((out / "input.png").string(), image);
  write_mask((out / "mask.png").string(), mask);
  write_image((out / "masked.png").string(), image * mask);
  std::ostringstream f;
  f << "# copaint inpaint --method " << r.method << " --model " << r.model << " --image " << r.image
    << " --mask " << r.mask << " --samples " << n << " --seed " << r.seed << "\n"
    << r.method_settings.prefixed(r.method).canonical()
    << r.model_settings.prefixed(r.model).canonical();
  write_file_atomic((out / "settings.ini").string(), f.str());
}

void write_samples(const InpaintRequest& r, const Sampled& s, const at::Tensor& image,
                   const at::Tensor& mask) {
  const std::filesystem::path out = r.out;
  for (int64_t i = 0; i < s.samples.size(0); ++i) {
    write_image((out / ("sample_" + std::to_string(i) + ".png")).string(), s.samples[i]);
  }
  if (r.save_tensors) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
    dict.insert("samples", s.samples);
    if (s.x_T.defined()) dict.insert("x_T", s.x_T);
    dict.insert("image", image.contiguous());
    dict.insert("mask", mask.contiguous());
    write_bytes((out / "samples.pt").string(), torch::jit::pickle_save(c10::IValue(dict)));
  }
}

/// What was written, the known-region fit per sample (mean |sample - image| over known pixels)
/// and the cost.
void print_summary(std::ostream& os, const InpaintRequest& r, const Sampled& s,
                   const at::Tensor& image, const at::Tensor& mask) {
  const int64_t n = s.samples.size(0);
  const at::Tensor known = mask.expand_as(image);
  const double known_count = known.sum().item<double>() * 1.0;
  char line[256];
  os << "wrote " << n << " sample" << (n == 1 ? "" : "s") << " to " << r.out << "\n";
  if (known_count > 0) {
    os << "known-region mean abs error:";
    for (int64_t i = 0; i < n; ++i) {
      std::snprintf(line, sizeof line, " %.4f",
                    ((s.samples[i] - image).abs() * known).sum().item<double>() / known_count);
      os << line;
    }
    os << "\n";
  }
  std::snprintf(line, sizeof line,
                "UNet evaluations: %lld forwards, %lld backwards (batched, %lld batch%s); "
                "%.2f s sampling, %.2f s per sample\n",
                static_cast<long long>(s.evals.forwards), static_cast<long long>(s.evals.backwards),
                static_cast<long long>(s.batches), s.batches == 1 ? "" : "es", s.seconds,
                s.seconds / static_cast<double>(n));
  os << line;
}

int cmd_inpaint(CommandContext& ctx) {
  const po::options_description desc = inpaint_options();
  po::variables_map vm = parse_command_args(ctx, desc);
  if (vm.count("help")) {
    ctx.out << desc << kInpaintNotes;
    return 0;
  }
  const InpaintRequest r = parse_request(vm, ctx);
  std::unique_ptr<MaskGenerator> mask_gen;
  if (r.mask_is_name) mask_gen = Registry<MaskGenerator>::global().create(r.mask, r.mask_settings);
  std::unique_ptr<Method> method =
      Registry<Method>::global().at(r.method).factory(r.method_settings);
  const c10::Device device = parse_device(ctx.device);
  const CurrentCudaDevice current_device(device);
  std::unique_ptr<Denoiser> model =
      Registry<Denoiser>::global().at(r.model).factory(r.model_settings);
  model->to(device);
  const int64_t size = model->image_size(), channels = model->channels();
  log_info("model: " + model->describe() + " on " + describe_device(device));

  const auto [image, mask] = read_inputs(r, mask_gen.get(), channels, size);
  const at::Tensor init_noise = checked_init_noise(r, channels, size);
  const int64_t n = init_noise.defined() ? init_noise.size(0) : (r.samples > 0 ? r.samples : 1);
  check_label(r, *model);
  write_inputs(r, image, mask, n);
  const Sampled s = sample_all(r, *method, *model, image, mask, init_noise, n, device);
  write_samples(r, s, image, mask);
  print_summary(ctx.out, r, s, image, mask);
  return 0;
}

}  // namespace

void register_inpaint_command() {
  add_command(
      {"inpaint", "inpaint one image with a method and a model, writing PNG samples", cmd_inpaint});
}

}  // namespace copaint
