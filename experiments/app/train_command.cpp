// `copaint train`: trains an ADM UNet as a DDPM eps-predictor on a registered dataset, on CPU or
// CUDA, in resumable chunks (state saved every --save-every steps and when --max-minutes runs
// out), exporting the EMA weights as a torch.load-compatible state_dict.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "datasets/dataset.h"
#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/experiment/config.h"
#include "framework/core/atomic_file.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/nn/models.h"
#include "framework/train/train.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

po::options_description train_options() {
  po::options_description d(
      "usage: copaint [--device D] train --dataset NAME --out DIR [options]\n"
      "The architecture comes from the `adm` model's settings (--set adm.num_channels=64 ...,\n"
      "`copaint list models`); the dataset's from --set <dataset>.<key>=...\n\nOptions");
  d.add_options()("help,h", "print this help")("dataset", po::value<std::string>(),
                                               "training data (`copaint list datasets`); required")(
      "out", po::value<std::string>(), "output folder (state, exported model, config); required")(
      "steps", po::value<int64_t>()->default_value(10000), "total optimiser steps")(
      "batch-size", po::value<int64_t>()->default_value(32), "images per step")(
      "lr", po::value<double>()->default_value(2e-4), "Adam learning rate")(
      "ema-decay", po::value<double>()->default_value(0.9999), "EMA decay of the exported weights")(
      "save-every", po::value<int64_t>()->default_value(500), "steps between saved states")(
      "max-minutes", po::value<double>()->default_value(0),
      "stop (after saving) once this much wall time has passed; 0 = no limit. Re-running the "
      "same command resumes from the saved state")("seed", po::value<uint64_t>()->default_value(0),
                                                   "seed of data order, timesteps and noise")(
      "evaluate", po::value<std::string>(),
      "no training: print the eps-MSE of the saved EMA weights by timestep on the dataset "
      "(comma-separated timesteps of the 1000-step process, e.g. 0,250,500,750,999)")(
      "eval-images", po::value<int64_t>()->default_value(256), "images used by --evaluate")(
      "config", po::value<std::vector<std::string>>()->composing(),
      "INI settings file (repeatable)")("set", po::value<std::vector<std::string>>()->composing(),
                                        "key=value setting (repeatable)");
  return d;
}

/// What `copaint train` was asked, typed.
struct TrainRequest {
  std::string dataset_name, out;
  Options dataset_settings, adm;
  UNetConfig config;
  TrainParams params;
  int64_t save_every = 1, eval_images = 1;
  double max_minutes = 0;
  std::string evaluate;  ///< comma-separated timesteps; empty = train
};

/// The model settings (adm.*) without the run settings, which apply to sampling only.
Options training_model_settings(const Options& settings) {
  const Options adm = Registry<Denoiser>::global().resolve("adm", settings.scope("adm"));
  for (const char* key : {"precision", "channels_last", "grad_checkpoint", "cudnn_benchmark"}) {
    const std::string value = canonical_value(adm.get(key));
    const bool unset =
        std::string(key) == "precision" ? (value == "auto" || value == "fp32") : value == "false";
    if (!unset) {
      throw UsageError(std::string("adm.") + key + "=" + value +
                       " applies to sampling (inpaint, run), not to train");
    }
  }
  return adm;
}

TrainRequest parse_request(const po::variables_map& vm) {
  if (!vm.count("dataset") || !vm.count("out")) throw UsageError("train needs --dataset and --out");
  const auto list = [&](const char* key) {
    return vm.count(key) ? vm[key].as<std::vector<std::string>>() : std::vector<std::string>{};
  };
  const Options settings = resolve_settings(list("config"), list("set"));
  TrainRequest r;
  r.dataset_name = vm["dataset"].as<std::string>();
  r.out = vm["out"].as<std::string>();
  for (const auto& [key, value] : settings.values()) {
    const std::string prefix = key.substr(0, key.find('.'));
    if (prefix != "adm" && prefix != r.dataset_name) {
      throw UsageError("setting '" + key +
                       "' is for neither the model nor the dataset; valid prefixes: adm, " +
                       r.dataset_name);
    }
  }
  r.adm = training_model_settings(settings);
  r.config = adm_config_from_options(r.adm);
  r.dataset_settings = settings.scope(r.dataset_name);
  r.params.steps = vm["steps"].as<int64_t>();
  r.params.batch_size = vm["batch-size"].as<int64_t>();
  r.params.lr = vm["lr"].as<double>();
  r.params.ema_decay = vm["ema-decay"].as<double>();
  r.params.seed = vm["seed"].as<uint64_t>();
  r.save_every = vm["save-every"].as<int64_t>();
  r.max_minutes = vm["max-minutes"].as<double>();
  r.eval_images = vm["eval-images"].as<int64_t>();
  if (vm.count("evaluate")) r.evaluate = vm["evaluate"].as<std::string>();
  if (r.params.steps < 1 || r.params.batch_size < 1)
    throw UsageError("--steps and --batch-size must be >= 1");
  if (!(r.params.lr > 0) || !std::isfinite(r.params.lr))
    throw UsageError("train: --lr must be a number > 0");
  if (!(r.params.ema_decay >= 0 && r.params.ema_decay < 1))
    throw UsageError("train: --ema-decay must be in [0, 1)");
  if (r.save_every < 1 || !(r.max_minutes >= 0) || r.eval_images < 1)
    throw UsageError("train: --save-every and --eval-images must be >= 1, --max-minutes >= 0");
  return r;
}

/// `model.ini` beside the weights: the ADM flags and the checkpoint, loadable with --config.
void write_model_ini(const TrainRequest& r) {
  const std::filesystem::path out = r.out;
  std::ostringstream cfg;
  cfg << "# Load with: copaint ... --model adm --config " << (out / "model.ini").string()
      << "\n[adm]\n";
  for (const auto& [k, v] : adm_flags(r.config)) cfg << k << " = " << v << "\n";
  cfg << "checkpoint = " << std::filesystem::absolute(out / "model_ema.pt").string() << "\n";
  cfg << "# trained with: dataset=" << r.dataset_name << " batch_size=" << r.params.batch_size
      << " lr=" << r.params.lr << " ema_decay=" << r.params.ema_decay << " seed=" << r.params.seed
      << "\n";
  write_file_atomic((out / "model.ini").string(), cfg.str());
}

/// Dataset image i as the model takes it (grey replicated to 3 channels).
at::Tensor model_image(Dataset& dataset, int64_t i, const UNetConfig& config) {
  at::Tensor img = dataset.get(i).image;
  if (img.size(0) == 1 && config.in_channels == 3) img = img.expand({3, -1, -1});
  return img;
}

/// --evaluate: the EMA's eps-MSE at each timestep on the first eval_images images, as a table.
void evaluate(const TrainRequest& r, DiffusionTrainer& trainer, Dataset& dataset,
              std::ostream& os) {
  if (trainer.steps_done() == 0) throw InputError("no training state in " + r.out + " to evaluate");
  const int64_t n = std::min<int64_t>(dataset.size(), r.eval_images);
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < n; ++i) images.push_back(model_image(dataset, i, r.config));
  const at::Tensor x0 = at::stack(images);
  os << "| timestep | eps-MSE (EMA, " << n << " images of " << r.dataset_name << ") |\n|---|---|\n";
  for (const auto& item : split_list(r.evaluate)) {
    const int64_t t = std::stoll(item);
    if (t < 0 || t >= 1000) throw UsageError("--evaluate timesteps must be in [0, 999]");
    double total = 0;
    int64_t count = 0;
    at::Generator gen =
        at::make_generator<at::CPUGeneratorImpl>(r.params.seed + 7919 * static_cast<uint64_t>(t));
    for (int64_t b = 0; b < n; b += r.params.batch_size) {
      const int64_t m = std::min(r.params.batch_size, n - b);
      total += trainer.eval_loss(x0.narrow(0, b, m), t, gen, /*use_ema=*/true) * m;
      count += m;
    }
    os << "| " << t << " | " << total / count << " |\n";
  }
}

/// The batch of `step`, drawn from its own generator: a resumed run draws exactly what an
/// uninterrupted one would.
at::Tensor step_batch(const TrainRequest& r, Dataset& dataset, int64_t step, at::Generator& gen) {
  const at::Tensor idx =
      at::randint(dataset.size(), {r.params.batch_size}, gen, at::TensorOptions().dtype(at::kLong));
  std::vector<at::Tensor> images;
  for (int64_t i = 0; i < r.params.batch_size; ++i)
    images.push_back(model_image(dataset, idx[i].item<int64_t>(), r.config));
  const at::Tensor x0 = at::stack(images);
  const UNetConfig& c = r.config;
  if (x0.size(1) != c.in_channels || x0.size(2) != c.image_size || x0.size(3) != c.image_size) {
    throw InputError("dataset images are " + std::to_string(x0.size(1)) + "x" +
                     std::to_string(x0.size(2)) + "x" + std::to_string(x0.size(3)) +
                     "; the model takes " + std::to_string(c.in_channels) + "x" +
                     std::to_string(c.image_size) + "x" + std::to_string(c.image_size));
  }
  return x0;
}

/// Trains to params.steps (or --max-minutes), saving every save_every steps and at the end;
/// returns the smoothed loss.
double train_loop(const TrainRequest& r, DiffusionTrainer& trainer, Dataset& dataset,
                  const std::function<void()>& save) {
  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar(r.params.steps, "train");
  bar.advance(trainer.steps_done());
  double smoothed = NAN;
  while (trainer.steps_done() < r.params.steps) {
    const int64_t step = trainer.steps_done();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(r.params.seed * 1000003ULL +
                                                                 static_cast<uint64_t>(step));
    const double loss = trainer.step(step_batch(r, dataset, step, gen), gen);
    smoothed = std::isnan(smoothed) ? loss : 0.98 * smoothed + 0.02 * loss;
    std::ostringstream status;
    status.precision(4);
    status << "loss " << smoothed;
    bar.advance(1, status.str());
    if (trainer.steps_done() % 50 == 0) {
      log_debug("train: step " + std::to_string(trainer.steps_done()) + " " + status.str());
    }
    const bool timeout =
        r.max_minutes > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
            60 * r.max_minutes;
    if (trainer.steps_done() % r.save_every == 0 || trainer.steps_done() == r.params.steps ||
        timeout) {
      save();
      log_debug("train: saved at step " + std::to_string(trainer.steps_done()));
    }
    if (timeout) {
      bar.finish();
      log_info("train: --max-minutes reached at step " + std::to_string(trainer.steps_done()) +
               "; run the same command again to resume");
      break;
    }
  }
  bar.finish();
  return smoothed;
}

int cmd_train(CommandContext& ctx) {
  const auto desc = train_options();
  po::variables_map vm = parse_command_args(ctx, desc, {}, /*notify=*/false);
  if (vm.count("help")) {
    ctx.out << desc;
    return 0;
  }
  po::notify(vm);
  const TrainRequest r = parse_request(vm);
  auto dataset = Registry<Dataset>::global().create(r.dataset_name, r.dataset_settings);
  if (dataset->size() == 0) throw InputError("dataset '" + r.dataset_name + "' is empty");
  const std::filesystem::path out = r.out;
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (!std::filesystem::is_directory(out, ec))
    throw InputError("cannot create output folder '" + out.string() + "'");
  const c10::Device device = parse_device(ctx.device);
  at::manual_seed(r.params.seed);
  UNet unet(r.config);
  unet.to(device);
  DiffusionTrainer trainer(unet, r.params, DiffusionSchedule::linear(1000));
  const std::string state_path = (out / "train_state.safetensors").string();
  if (std::filesystem::exists(state_path)) {
    trainer.load_state(state_path);
    log_info("train: resuming " + state_path + " at step " + std::to_string(trainer.steps_done()));
  }
  write_model_ini(r);
  if (!r.evaluate.empty()) {
    evaluate(r, trainer, *dataset, ctx.out);
    return 0;
  }
  auto save = [&] {
    trainer.save_state(state_path);
    save_torch_state_dict((out / "model_ema.pt").string(), trainer.ema_state());
  };
  const double smoothed = train_loop(r, trainer, *dataset, save);
  if (trainer.steps_done() >= r.params.steps) save();
  ctx.out << "train: step " << trainer.steps_done() << "/" << r.params.steps << ", smoothed loss "
          << smoothed << "; model " << (out / "model_ema.pt").string() << " (settings in "
          << (out / "model.ini").string() << ")\n";
  return 0;
}

}  // namespace

void register_train_command() {
  add_command(
      {"train", "train an ADM UNet as a DDPM eps-predictor on a dataset (resumable)", cmd_train});
}

}  // namespace copaint
