// `copaint inpaint`: fills the unknown region of one image with a registered method and model,
// writing the samples as PNG files (and, on request, the tensors as a torch.load-able file).
#include "experiments/inpaint_command.h"

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
#include "experiments/cli.h"
#include "experiments/command_args.h"
#include "experiments/config.h"
#include "experiments/image_io.h"
#include "experiments/inpaint_batch.h"
#include "experiments/models.h"
#include "framework/atomic_file.h"
#include "framework/checkpoint.h"
#include "framework/device.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/registry.h"
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
      "model: celebahq256 | imagenet256 | adm | gaussian (`copaint list models`); required")(
      "checkpoint", po::value<std::string>(), "shorthand for --set <model>.checkpoint=FILE")(
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
      "dict with key x_T (e.g. a samples.pt from --save-tensors); sets --samples")(
      "samples", po::value<int64_t>(), "number of samples (default 1, or N of --init-noise)")(
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
    "Prints the UNet forward and backward passes (each over a whole batch) and the time spent.\n";

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

int cmd_inpaint(CommandContext& ctx) {
  const po::options_description desc = inpaint_options();
  po::variables_map vm = parse_command_args(ctx, desc);
  if (vm.count("help")) {
    ctx.out << desc << kInpaintNotes;
    return 0;
  }
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
  const std::string method_name = vm["method"].as<std::string>();
  const std::string model_name = vm["model"].as<std::string>();
  const std::string mask_arg = vm["mask"].as<std::string>();
  methods.at(method_name);  // unknown names fail here, listing the valid ones
  models.at(model_name);
  const bool mask_is_name = masks.contains(mask_arg);

  // Settings: files, then --set, then --checkpoint; every key must be scoped by a known prefix.
  auto list = [&](const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
  };
  Options settings = resolve_settings(list("config"), list("set"));
  if (vm.count("checkpoint"))
    settings.set(model_name + ".checkpoint", vm["checkpoint"].as<std::string>());
  if (!ctx.precision.empty()) settings.set(model_name + ".precision", ctx.precision);
  std::vector<std::string> prefixes = {method_name, model_name};
  if (mask_is_name && !masks.at(mask_arg).options.empty()) prefixes.push_back(mask_arg);
  for (const auto& [key, value] : settings.values()) {
    const auto dot = key.find('.');
    const std::string prefix = dot == std::string::npos ? "" : key.substr(0, dot);
    if (std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end()) {
      throw UsageError("setting '" + key + "' is not scoped by the method or the model; valid " +
                       "prefixes: " + join_names(prefixes) + " (e.g. " + method_name + ".KEY)");
    }
  }
  const Options method_opts = methods.resolve(method_name, settings.scope(method_name));
  const Options model_opts = models.resolve(model_name, settings.scope(model_name));
  std::unique_ptr<MaskGenerator> mask_gen;
  if (mask_is_name) mask_gen = masks.create(mask_arg, settings.scope(mask_arg));
  std::unique_ptr<Method> method = methods.at(method_name).factory(method_opts);

  const int64_t batch_size = vm["batch-size"].as<int64_t>();
  const int64_t seed = vm["seed"].as<int64_t>();
  if (batch_size < 0) throw UsageError("inpaint: --batch-size must be >= 0");
  if (seed < 0) throw UsageError("inpaint: --seed must be >= 0");
  if (vm.count("samples") && vm["samples"].as<int64_t>() < 1) {
    throw UsageError("inpaint: --samples must be >= 1");
  }

  const c10::Device device = parse_device(ctx.device);
  std::unique_ptr<Denoiser> model = models.at(model_name).factory(model_opts);
  model->to(device);
  const int64_t size = model->image_size(), channels = model->channels();
  log_info("model: " + model->describe() + " on " + describe_device(device));

  // The image and mask as the model sees them.
  const std::string image_path = vm["image"].as<std::string>();
  at::Tensor image = read_image(image_path, channels, 0);
  at::Tensor mask;
  if (mask_is_name) {
    image = resize_center_crop(image, size);
    mask = mask_gen->make(size, size, 0, static_cast<uint64_t>(vm["mask-seed"].as<int64_t>()));
  } else {
    std::error_code exists_ec;
    if (!std::filesystem::exists(mask_arg, exists_ec)) {
      throw InputError("mask '" + mask_arg + "': no such file, and not a registered mask name (" +
                       join_names(masks.names()) + ")");
    }
    mask = read_mask(mask_arg, 0, vm["mask-invert"].as<bool>());
    const int64_t h = image.size(1), w = image.size(2);
    if (mask.size(1) != h || mask.size(2) != w) {
      if (!vm["mask-resize"].as<bool>()) {
        throw InputError("mask '" + mask_arg + "' is " + size_str(mask.size(1), mask.size(2)) +
                         " but image '" + image_path + "' is " + size_str(h, w) +
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

  // Samples and initial noise.
  at::Tensor init_noise;
  if (vm.count("init-noise")) {
    const std::string path = vm["init-noise"].as<std::string>();
    init_noise = read_init_noise(path);
    if (init_noise.size(1) != channels || init_noise.size(2) != size ||
        init_noise.size(3) != size) {
      throw InputError("init noise '" + path + "' is [" + std::to_string(init_noise.size(0)) + "," +
                       std::to_string(init_noise.size(1)) + "," +
                       size_str(init_noise.size(2), init_noise.size(3)) + "], the model needs [N," +
                       std::to_string(channels) + "," + size_str(size, size) + "]");
    }
    if (vm.count("samples") && vm["samples"].as<int64_t>() != init_noise.size(0)) {
      throw InputError("init noise '" + path + "' holds " + std::to_string(init_noise.size(0)) +
                       " samples but --samples is " + std::to_string(vm["samples"].as<int64_t>()));
    }
  }
  const int64_t n = init_noise.defined() ? init_noise.size(0)
                                         : (vm.count("samples") ? vm["samples"].as<int64_t>() : 1);
  const int64_t bs = batch_size == 0 ? n : std::min(batch_size, n);

  const int64_t label = vm["class-label"].as<int64_t>();
  if (model->num_classes() > 0 && (label < 0 || label >= model->num_classes())) {
    throw UsageError("inpaint: model '" + model_name +
                     "' is class-conditional: give --class-label " + "in [0, " +
                     std::to_string(model->num_classes()) + ")");
  }
  if (model->num_classes() == 0 && label >= 0) {
    throw UsageError("inpaint: model '" + model_name +
                     "' is not class-conditional; drop --class-label");
  }

  // Output folder and the inputs as seen by the model.
  const std::filesystem::path out = vm["out"].as<std::string>();
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec || !std::filesystem::is_directory(out)) {
    throw InputError("cannot create output folder '" + out.string() + "'");
  }
  write_image((out / "input.png").string(), image);
  write_mask((out / "mask.png").string(), mask);
  write_image((out / "masked.png").string(), image * mask);
  {
    std::ostringstream f;
    f << "# copaint inpaint --method " << method_name << " --model " << model_name << " --image "
      << image_path << " --mask " << mask_arg << " --samples " << n << " --seed " << seed << "\n"
      << method_opts.prefixed(method_name).canonical()
      << model_opts.prefixed(model_name).canonical();
    write_file_atomic((out / "settings.ini").string(), f.str());
  }

  // Sampling, batch by batch.
  EvalCounter evals;
  std::vector<at::Tensor> samples, noises;
  std::unique_ptr<ProgressBar> bar;
  const int64_t batches = (n + bs - 1) / bs;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < n; first += bs) {
    const int64_t b = std::min(bs, n - first);
    InpaintBatch batch;
    for (int64_t i = first; i < first + b; ++i)
      batch.seeds.push_back(inpaint_sample_seed(static_cast<uint64_t>(seed), i));
    batch.images = image.unsqueeze(0).expand({b, -1, -1, -1});
    batch.masks = mask.unsqueeze(0);
    if (model->num_classes() > 0) batch.labels = at::full({b}, label, at::kLong);
    if (init_noise.defined()) batch.x_T = init_noise.narrow(0, first, b);
    batch.draw_x_T = !method->draws_own_initial_noise();
    batch.on_step = [&](int64_t, int64_t total) {
      if (!bar) bar = std::make_unique<ProgressBar>(total * batches, "inpaint");
      bar->advance(1);
    };
    const InpaintBatchResult result = run_inpaint_batch(*method, *model, batch, device);
    evals.forwards += result.evals.forwards;
    evals.backwards += result.evals.backwards;
    samples.push_back(result.samples);
    if (result.x_T.defined()) noises.push_back(result.x_T);
  }
  if (bar) bar->finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const at::Tensor all = at::cat(samples, 0);
  const at::Tensor x_T = noises.empty() ? at::Tensor() : at::cat(noises, 0);

  for (int64_t i = 0; i < n; ++i) {
    write_image((out / ("sample_" + std::to_string(i) + ".png")).string(), all[i]);
  }
  if (vm["save-tensors"].as<bool>()) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
    dict.insert("samples", all);
    if (x_T.defined()) dict.insert("x_T", x_T);
    dict.insert("image", image.contiguous());
    dict.insert("mask", mask.contiguous());
    write_bytes((out / "samples.pt").string(), torch::jit::pickle_save(c10::IValue(dict)));
  }

  // Known-region fit per sample: mean |sample - image| over known pixels.
  const at::Tensor known = mask.expand_as(image);
  const double known_count = known.sum().item<double>() * 1.0;
  char line[256];
  ctx.out << "wrote " << n << " sample" << (n == 1 ? "" : "s") << " to " << out.string() << "\n";
  if (known_count > 0) {
    ctx.out << "known-region mean abs error:";
    for (int64_t i = 0; i < n; ++i) {
      std::snprintf(line, sizeof line, " %.4f",
                    ((all[i] - image).abs() * known).sum().item<double>() / known_count);
      ctx.out << line;
    }
    ctx.out << "\n";
  }
  std::snprintf(line, sizeof line,
                "UNet evaluations: %lld forwards, %lld backwards (batched, %lld batch%s); "
                "%.2f s sampling, %.2f s per sample\n",
                static_cast<long long>(evals.forwards), static_cast<long long>(evals.backwards),
                static_cast<long long>(batches), batches == 1 ? "" : "es", seconds,
                seconds / static_cast<double>(n));
  ctx.out << line;
  return 0;
}

}  // namespace

uint64_t inpaint_sample_seed(uint64_t seed, int64_t index) {
  return seed * 1000003ULL + static_cast<uint64_t>(index);
}

void register_inpaint_command() {
  add_command(
      {"inpaint", "inpaint one image with a method and a model, writing PNG samples", cmd_inpaint});
}

}  // namespace copaint
