// `copaint export-inputs`, `copaint score` and `copaint import-config`.
#include <cctype>
#include <fstream>
#include <sstream>

#include <boost/program_options.hpp>

#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/experiment/config.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/external.h"
#include "experiments/report/cell_views.h"
#include "framework/core/atomic_file.h"
#include "framework/core/error.h"
#include "framework/core/options.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

std::vector<std::string> sets(const po::variables_map& vm) {
  return vm.count("set") ? vm["set"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

int cmd_export_inputs(CommandContext& ctx) {
  po::options_description d(
      "usage: copaint export-inputs EXPERIMENT.ini --out DIR [--set k=v]...\n\n"
      "Writes the experiment's inputs for a method outside this program: per dataset, mask and\n"
      "image DIR/<dataset>/<mask>/<image>/gt.png (reference), mask.png (255 = known),\n"
      "masked.png (image x mask, the hole grey) and an empty samples/ folder, plus\n"
      "DIR/manifest.csv and DIR/manifest.json (one row per sample: ids, the sample's seed, the\n"
      "files, and where its prediction goes: <dataset>/<mask>/<image>/samples/<k:05>.png, the\n"
      "official CoPaint code's layout). Score the predictions with `copaint score`. No model is\n"
      "loaded.\n\nOptions");
  d.add_options()("help,h", "print this help")("out", po::value<std::string>(),
                                               "output folder (required)")(
      "set", po::value<std::vector<std::string>>()->composing(), "an experiment key=value")(
      "experiment", po::value<std::string>(), "");
  const po::variables_map vm = parse_command_args(ctx, d, {{"experiment", 1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  if (!vm.count("experiment")) throw UsageError("export-inputs: give an experiment file");
  if (!vm.count("out")) throw UsageError("export-inputs: --out DIR is required");
  const Experiment ex = load_experiment(vm["experiment"].as<std::string>(), sets(vm));
  const std::string dir = vm["out"].as<std::string>();
  const int64_t n = export_inputs(ex, dir);
  ctx.out << "wrote " << n << " input folders and " << dir << "/manifest.csv, " << dir
          << "/manifest.json\n";
  return 0;
}

int cmd_score(CommandContext& ctx) {
  po::options_description d(
      "usage: copaint score EXPERIMENT.ini --predictions DIR --as NAME [--set k=v]... [--out "
      "RESULTS]\n\n"
      "Scores predicted images of a method outside this program with the experiment's metrics\n"
      "and stores them in its results (default results/<name>/) as method NAME, beside the\n"
      "built-in methods: `copaint report`, --plots and `export --grid` show them. Predictions:\n"
      "DIR/<dataset>/<mask>/<image>/samples/<k:05>.png (k = seed position x samples + sample\n"
      "index), as `copaint export-inputs` lays out and the official CoPaint code writes;\n"
      "DIR/<mask>/<image>/samples/... (one dataset) and DIR/<image>/samples/... (one dataset\n"
      "and mask) are accepted too. Missing, unreadable or mis-sized files are listed and not\n"
      "stored (exit code 1). --set key=value without a dot, or NAME.key=value, is a setting of\n"
      "NAME (stored as its settings, e.g. --set note=v2); other keys override the experiment.\n\n"
      "Options");
  d.add_options()("help,h", "print this help")("predictions", po::value<std::string>(),
                                               "folder of predicted images (required)")(
      "as", po::value<std::string>(),
      "method name to store them under (required; not a built-in method's name)")(
      "out", po::value<std::string>(), "results folder (default results/<name>)")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "key=value: NAME's setting (no dot, or NAME.key) or an experiment key")(
      "experiment", po::value<std::string>(), "");
  const po::variables_map vm = parse_command_args(ctx, d, {{"experiment", 1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  if (!vm.count("experiment")) throw UsageError("score: give an experiment file");
  if (!vm.count("predictions")) throw UsageError("score: --predictions DIR is required");
  if (!vm.count("as")) throw UsageError("score: --as NAME is required");
  ScoreOptions o;
  o.predictions = vm["predictions"].as<std::string>();
  o.name = vm["as"].as<std::string>();
  for (char c : o.name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
      throw UsageError("score: --as NAME takes letters, digits, '_' and '-', got '" + o.name + "'");
  }
  if (vm.count("out")) o.out_dir = vm["out"].as<std::string>();
  std::vector<std::string> overrides;
  for (const auto& a : sets(vm)) {
    const auto eq = a.find('=');
    const std::string key = eq == std::string::npos ? a : a.substr(0, eq);
    if (key.find('.') == std::string::npos) {
      o.settings.set_assignment(a);
    } else if (key.rfind(o.name + ".", 0) == 0) {
      o.settings.set_assignment(a.substr(o.name.size() + 1));
    } else {
      overrides.push_back(a);
    }
  }
  const Experiment ex = load_experiment(vm["experiment"].as<std::string>(), overrides);
  const ScoreSummary s = score_predictions(ex, o);
  refresh_cell_views(s.db);
  ctx.out << "scored " << s.scored << " predictions of " << o.name << " into " << s.db << "\n";
  const size_t bad = s.missing.size() + s.mis_sized.size();
  if (!s.missing.empty()) {
    ctx.err << s.missing.size() << " prediction(s) missing (not stored):\n";
    for (const auto& m : s.missing) ctx.err << "  " << m << "\n";
  }
  if (!s.mis_sized.empty()) {
    ctx.err << s.mis_sized.size() << " prediction(s) unusable (not stored):\n";
    for (const auto& m : s.mis_sized) ctx.err << "  " << m << "\n";
  }
  return bad ? 1 : 0;
}

int cmd_import_config(CommandContext& ctx) {
  po::options_description d(
      "usage: copaint import-config REF.yaml [--set ref.key=value]... [--out FILE.ini] [-- "
      "--ref_flag value ...]\n\n"
      "Turns one of the official CoPaint code's YAML configs (configs/celebahq.yaml, ...) plus\n"
      "its command-line overrides (the reference's own keys: --set optimize_xt.lr_xt=0.01,\n"
      "--set ddim.schedule_params.use_timetravel, or after -- as its scripts pass them:\n"
      "-- --algorithm o_ddim --mask_type half) into an experiment file of ours (printed, or\n"
      "written to --out). Keys without a counterpart are listed as comments. The key table is\n"
      "in methods/README.md.\n\nOptions");
  d.add_options()("help,h", "print this help")(
      "set", po::value<std::vector<std::string>>()->composing(),
      "a reference key=value (a bare key is a flag: true)")(
      "out", po::value<std::string>(), "write the INI here instead of printing it")(
      "args", po::value<std::vector<std::string>>(), "");
  po::variables_map vm = parse_command_args(ctx, d, {{"args", -1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  std::vector<std::string> args =
      vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (args.empty()) throw UsageError("import-config: give the reference's YAML file");
  const std::string yaml = args.front();
  std::vector<std::string> overrides = sets(vm);
  // The reference's argparse form after `--`: --key value, or --flag (then true).
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) != 0)
      throw UsageError("import-config: expected --key [value] after the file, got '" + args[i] +
                       "'");
    const std::string key = args[i].substr(2);
    if (key.find('=') != std::string::npos) {
      overrides.push_back(key);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      overrides.push_back(key + "=" + args[++i]);
    } else {
      overrides.push_back(key);
    }
  }
  const std::string text = read_settings_text(yaml, "import-config: YAML config");
  const std::string ini = import_reference_config(text, overrides);
  if (vm.count("out")) {
    write_file_atomic(vm["out"].as<std::string>(), ini);  // complete or an error, never a part
    ctx.out << "wrote " << vm["out"].as<std::string>() << "\n";
  } else {
    ctx.out << ini;
  }
  return 0;
}

}  // namespace

void register_external_commands() {
  add_command({"export-inputs",
               "an experiment's images, masks, seeds and a manifest, for a method outside this "
               "program",
               cmd_export_inputs});
  add_command(
      {"score", "score a folder of predicted images and store them as a method", cmd_score});
  add_command({"import-config", "the official code's YAML config + overrides as our INI",
               cmd_import_config});
}

}  // namespace copaint
