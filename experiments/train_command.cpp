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
#include <sstream>

#include "datasets/dataset.h"
#include "experiments/cli.h"
#include "experiments/command_args.h"
#include "experiments/config.h"
#include "experiments/models.h"
#include "framework/atomic_file.h"
#include "framework/device.h"
#include "framework/error.h"
#include "framework/log.h"
#include "framework/registry.h"
#include "framework/train.h"

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

int cmd_train(CommandContext& ctx) {
  const auto desc = train_options();
  po::variables_map vm = parse_command_args(ctx, desc, {}, /*notify=*/false);
  if (vm.count("help")) {
    ctx.out << desc;
    return 0;
  }
  po::notify(vm);
  if (!vm.count("dataset") || !vm.count("out")) throw UsageError("train needs --dataset and --out");
  const auto files =
      vm.count("config") ? vm["config"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const auto sets =
      vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
  const Options settings = resolve_settings(files, sets);
  const std::string dataset_name = vm["dataset"].as<std::string>();
  for (const auto& [key, value] : settings.values()) {
    const auto dot = key.find('.');
    const std::string prefix = key.substr(0, dot);
    if (prefix != "adm" && prefix != dataset_name) {
      throw UsageError("setting '" + key +
                       "' is for neither the model nor the dataset; valid "
                       "prefixes: adm, " +
                       dataset_name);
    }
  }
  const Options adm = Registry<Denoiser>::global().resolve("adm", settings.scope("adm"));
  // The run settings of the model are for sampling; training runs float32 with the graph kept.
  for (const char* key : {"precision", "channels_last", "grad_checkpoint", "cudnn_benchmark"}) {
    const std::string value = canonical_value(adm.get(key));
    const bool unset =
        std::string(key) == "precision" ? (value == "auto" || value == "fp32") : value == "false";
    if (!unset) {
      throw UsageError(std::string("adm.") + key + "=" + value +
                       " applies to sampling (inpaint, run), not to train");
    }
  }
  const UNetConfig config = adm_config_from_options(adm);
  auto dataset = Registry<Dataset>::global().create(dataset_name, settings.scope(dataset_name));
  if (dataset->size() == 0) throw InputError("dataset '" + dataset_name + "' is empty");

  TrainParams params;
  params.steps = vm["steps"].as<int64_t>();
  params.batch_size = vm["batch-size"].as<int64_t>();
  params.lr = vm["lr"].as<double>();
  params.ema_decay = vm["ema-decay"].as<double>();
  params.seed = vm["seed"].as<uint64_t>();
  const int64_t save_every = std::max<int64_t>(1, vm["save-every"].as<int64_t>());
  const double max_minutes = vm["max-minutes"].as<double>();
  if (params.steps < 1 || params.batch_size < 1)
    throw UsageError("--steps and --batch-size must be >= 1");
  if (!(params.lr > 0) || !std::isfinite(params.lr))
    throw UsageError("train: --lr must be a number > 0");
  if (!(params.ema_decay >= 0 && params.ema_decay < 1))
    throw UsageError("train: --ema-decay must be in [0, 1)");
  if (vm["save-every"].as<int64_t>() < 1 || !(max_minutes >= 0) ||
      vm["eval-images"].as<int64_t>() < 1)
    throw UsageError("train: --save-every and --eval-images must be >= 1, --max-minutes >= 0");

  const std::filesystem::path out = vm["out"].as<std::string>();
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (!std::filesystem::is_directory(out, ec))
    throw InputError("cannot create output folder '" + out.string() + "'");
  const c10::Device device = parse_device(ctx.device);
  at::manual_seed(params.seed);
  UNet unet(config);
  unet.to(device);
  DiffusionTrainer trainer(unet, params, DiffusionSchedule::linear(1000));
  const std::string state_path = (out / "train_state.safetensors").string();
  if (std::filesystem::exists(state_path)) {
    trainer.load_state(state_path);
    log_info("train: resuming " + state_path + " at step " + std::to_string(trainer.steps_done()));
  }
  {
    std::ostringstream cfg;
    cfg << "# Load with: copaint ... --model adm --config " << (out / "model.ini").string()
        << "\n[adm]\n";
    for (const auto& [k, v] : adm_flags(config)) cfg << k << " = " << v << "\n";
    cfg << "checkpoint = " << std::filesystem::absolute(out / "model_ema.pt").string() << "\n";
    cfg << "# trained with: dataset=" << dataset_name << " batch_size=" << params.batch_size
        << " lr=" << params.lr << " ema_decay=" << params.ema_decay << " seed=" << params.seed
        << "\n";
    write_file_atomic((out / "model.ini").string(), cfg.str());
  }

  if (vm.count("evaluate")) {
    if (trainer.steps_done() == 0)
      throw InputError("no training state in " + out.string() + " to evaluate");
    const int64_t n = std::min<int64_t>(dataset->size(), vm["eval-images"].as<int64_t>());
    std::vector<at::Tensor> images;
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor img = dataset->get(i).image;
      if (img.size(0) == 1 && config.in_channels == 3) img = img.expand({3, -1, -1});
      images.push_back(img);
    }
    const at::Tensor x0 = at::stack(images);
    ctx.out << "| timestep | eps-MSE (EMA, " << n << " images of " << dataset_name
            << ") |\n|---|---|\n";
    for (const auto& item : split_list(vm["evaluate"].as<std::string>())) {
      const int64_t t = std::stoll(item);
      if (t < 0 || t >= 1000) throw UsageError("--evaluate timesteps must be in [0, 999]");
      double total = 0;
      int64_t count = 0;
      at::Generator gen =
          at::make_generator<at::CPUGeneratorImpl>(params.seed + 7919 * static_cast<uint64_t>(t));
      for (int64_t b = 0; b < n; b += params.batch_size) {
        const int64_t m = std::min(params.batch_size, n - b);
        total += trainer.eval_loss(x0.narrow(0, b, m), t, gen, /*use_ema=*/true) * m;
        count += m;
      }
      ctx.out << "| " << t << " | " << total / count << " |\n";
    }
    return 0;
  }
  auto save = [&] {
    trainer.save_state(state_path);
    save_torch_state_dict((out / "model_ema.pt").string(), trainer.ema_state());
  };
  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar(params.steps, "train");
  bar.advance(trainer.steps_done());
  double smoothed = NAN;
  while (trainer.steps_done() < params.steps) {
    const int64_t step = trainer.steps_done();
    // One generator per step: a resumed run draws exactly what an uninterrupted one would.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(params.seed * 1000003ULL +
                                                                 static_cast<uint64_t>(step));
    const at::Tensor idx = at::randint(dataset->size(), {params.batch_size}, gen,
                                       at::TensorOptions().dtype(at::kLong));
    std::vector<at::Tensor> images;
    for (int64_t i = 0; i < params.batch_size; ++i) {
      at::Tensor img = dataset->get(idx[i].item<int64_t>()).image;
      if (img.size(0) == 1 && config.in_channels == 3) img = img.expand({3, -1, -1});
      images.push_back(img);
    }
    const at::Tensor x0 = at::stack(images);
    if (x0.size(1) != config.in_channels || x0.size(2) != config.image_size ||
        x0.size(3) != config.image_size) {
      throw InputError("dataset images are " + std::to_string(x0.size(1)) + "x" +
                       std::to_string(x0.size(2)) + "x" + std::to_string(x0.size(3)) +
                       "; the model takes " + std::to_string(config.in_channels) + "x" +
                       std::to_string(config.image_size) + "x" + std::to_string(config.image_size));
    }
    const double loss = trainer.step(x0, gen);
    smoothed = std::isnan(smoothed) ? loss : 0.98 * smoothed + 0.02 * loss;
    std::ostringstream status;
    status.precision(4);
    status << "loss " << smoothed;
    bar.advance(1, status.str());
    if (trainer.steps_done() % 50 == 0) {
      log_debug("train: step " + std::to_string(trainer.steps_done()) + " " + status.str());
    }
    const bool timeout =
        max_minutes > 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
            60 * max_minutes;
    if (trainer.steps_done() % save_every == 0 || trainer.steps_done() == params.steps || timeout) {
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
  if (trainer.steps_done() >= params.steps) save();
  ctx.out << "train: step " << trainer.steps_done() << "/" << params.steps << ", smoothed loss "
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
