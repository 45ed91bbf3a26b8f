// The `copaint` command line: global options, dispatch, `list`, `--version`, `--help`.
#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <utility>

#include <boost/program_options.hpp>

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/app/inpaint_command.h"
#include "experiments/app/run_command.h"
#include "framework/core/device.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/registry.h"
#include "framework/core/torch_compat.h"
#include "framework/core/version.h"
#include "framework/diffusion/model.h"
#include "methods/method.h"
#include "methods/verify/verify_command.h"
#include "metrics/metric.h"
#include "metrics/set_metric.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

std::vector<Command>& commands() {
  static std::vector<Command> list;
  return list;
}

const char* kUsage =
    "usage: copaint [global options] <command> [command options] [global options]\n";

po::options_description global_options() {
  po::options_description d("Global options");
  d.add_options()("help,h",
                  "print this help (or `copaint <command> --help` for a command's options)")(
      "version", "print version, git revision, LibTorch version and whether CUDA is available")(
      "device", po::value<std::string>()->default_value("auto"),
      "auto | cpu | cuda | cuda:N (auto = CUDA when LibTorch sees a GPU)")(
      "threads", po::value<int>()->default_value(0),
      "CPU threads for LibTorch (0 = SLURM_CPUS_PER_TASK when set, else LibTorch's default)")(
      "precision", po::value<std::string>(),
      "fp32 | tf32 | bf16 | fp16: the UNet's arithmetic for inpaint and run (shorthand for "
      "--set <model>.precision=P; default: the model's setting, auto = fp16 for use_fp16 "
      "checkpoints on CUDA, else fp32; fp16 needs CUDA)")(
      "allow-large",
      "accept values above an option's sane bound (e.g. copaint.G > 1000; `copaint list` shows "
      "each option's range)")("log-level", po::value<std::string>()->default_value("info"),
                              "debug | info | warn | error | quiet")(
      "quiet,q", "no progress bars and only warnings and errors");
  return d;
}

std::string version_text() {
  std::ostringstream os;
  os << "copaint " << version() << "\n"
     << "git revision: " << git_revision() << "\n"
     << "LibTorch: " << torch_version() << "\n"
     << "CUDA built in: " << (cuda_built() ? "yes (CUDA " + cuda_build_version() + ")" : "no")
     << "\n"
     << "CUDA available: "
     << (cuda_available() ? "yes (" + std::to_string(cuda_device_count()) + " GPU(s))" : "no")
     << "\n";
  return os.str();
}

template <class T>
void print_registry(std::ostream& out, const char* title) {
  const auto& entries = Registry<T>::global().entries();
  out << title << " (" << entries.size() << "):\n";
  for (const auto& e : entries) {
    out << "  " << e.name << " - " << e.description << "\n";
    for (const auto& o : e.options) {
      out << "      " << e.name << "." << o.key << " = " << o.default_value << "    " << o.help;
      if (!o.range.unconstrained()) out << " [" << o.range.describe() << "]";
      out << "\n";
    }
  }
}

int cmd_list(CommandContext& ctx) {
  po::options_description d("copaint list [methods|metrics|datasets|masks|models]");
  d.add_options()("help,h", "print this help")("what", po::value<std::string>(), "one kind only");
  po::variables_map vm = parse_command_args(ctx, d, {{"what", 1}}, /*notify=*/false);
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  const std::string what = vm.count("what") ? vm["what"].as<std::string>() : "";
  const std::map<std::string, std::function<void()>> kinds = {
      {"methods", [&] { print_registry<Method>(ctx.out, "methods"); }},
      {"metrics",
       [&] {
         print_registry<Metric>(ctx.out, "metrics");
         print_registry<SetMetric>(ctx.out, "metrics over a set (scored per complete cell)");
       }},
      {"datasets", [&] { print_registry<Dataset>(ctx.out, "datasets"); }},
      {"masks", [&] { print_registry<MaskGenerator>(ctx.out, "masks"); }},
      {"models", [&] { print_registry<Denoiser>(ctx.out, "models"); }},
  };
  if (!what.empty()) {
    auto it = kinds.find(what);
    if (it == kinds.end()) {
      throw UsageError("unknown kind '" + what +
                       "'; valid: datasets, masks, methods, metrics, models");
    }
    it->second();
    return 0;
  }
  for (const char* k : {"methods", "metrics", "datasets", "masks", "models"}) {
    kinds.at(k)();
    ctx.out << "\n";
  }
  return 0;
}

/// Moves the global options found after the subcommand (`copaint run X.ini --device cpu`) into
/// `global_args`, except names the subcommand has itself (report's --precision is its digits).
/// Stops at `--`.
void hoist_global_options(std::vector<std::string>* rest, std::vector<std::string>* global_args) {
  if (rest->empty()) return;
  const std::string& command = rest->front();
  std::vector<std::string> kept{command};
  for (size_t i = 1; i < rest->size(); ++i) {
    const std::string& a = (*rest)[i];
    if (a == "--") {
      kept.insert(kept.end(), rest->begin() + static_cast<long>(i), rest->end());
      break;
    }
    const std::string name = a.substr(0, a.find('='));
    const bool own = command == "report" && name == "--precision";
    const bool with_value =
        name == "--device" || name == "--threads" || name == "--log-level" || name == "--precision";
    if (!own && with_value) {
      global_args->push_back(a);
      if (a.find('=') == std::string::npos && i + 1 < rest->size())
        global_args->push_back((*rest)[++i]);
    } else if (a == "--quiet" || a == "-q" || a == "--allow-large") {
      global_args->push_back(a);
    } else {
      kept.push_back(a);
    }
  }
  *rest = std::move(kept);
}

void print_help(std::ostream& out) {
  out << kUsage << "\nCommands:\n";
  for (const auto& c : commands())
    out << "  " << c.name << std::string(12 - std::min<size_t>(11, c.name.size()), ' ') << c.summary
        << "\n";
  out << "\n"
      << global_options() << "\n"
      << "Settings use dotted keys (e.g. copaint.G=5): give them with `--set key=value` or in an\n"
      << "INI file with `--config FILE` (commands that take settings); the command line wins.\n";
}

void ensure_builtin_commands() {
  static bool done = false;
  if (done) return;
  done = true;
  add_command({"list",
               "list registered methods, metrics, datasets, masks and models with their options",
               cmd_list});
  register_inpaint_command();
  register_inspect_command();
  register_train_command();
  register_run_command();
  register_merge_command();
  register_report_command();
  register_export_command();
  register_external_commands();
  add_command({"verify",
               "replay recorded reference runs: does this install reproduce the reference?",
               [](CommandContext& ctx) { return run_verify(ctx.args, ctx.device, ctx.out); }});
}

/// The global options before the subcommand (with their values), and the rest: the subcommand
/// and its arguments, global options among them hoisted to the first.
std::pair<std::vector<std::string>, std::vector<std::string>> split_global_args(
    const std::vector<std::string>& argv) {
  // Global options stop at the first positional (the subcommand).
  std::vector<std::string> global_args, rest;
  size_t i = 0;
  for (; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.empty() || a[0] != '-') break;
    global_args.push_back(a);
    const bool takes_value =
        (a == "--device" || a == "--threads" || a == "--log-level" || a == "--precision");
    if (takes_value && i + 1 < argv.size()) global_args.push_back(argv[++i]);
  }
  rest.assign(argv.begin() + static_cast<long>(i), argv.end());
  hoist_global_options(&rest, &global_args);
  return {global_args, rest};
}

/// Applies the global options (log level, progress bars, large values, threads) and checks the
/// device and precision, so that a typo fails before any work; returns the precision (empty:
/// the model's setting).
std::string apply_global_options(const po::variables_map& vm) {
  set_log_level(vm.count("quiet") ? LogLevel::kWarn
                                  : parse_log_level(vm["log-level"].as<std::string>()));
  if (vm.count("quiet")) ProgressBar::set_enabled(false);
  set_allow_large_values(vm.count("allow-large") > 0);
  int threads = vm["threads"].as<int>();
  if (vm["threads"].defaulted()) {
    // Under SLURM, the allocation's CPUs (not LibTorch's default of every core of the node).
    const char* cpus = std::getenv("SLURM_CPUS_PER_TASK");
    if (cpus && std::atoi(cpus) > 0) threads = std::atoi(cpus);
  }
  set_num_threads(threads);
  parse_device(vm["device"].as<std::string>());
  const std::string precision = vm.count("precision") ? vm["precision"].as<std::string>() : "";
  if (!precision.empty()) parse_precision(precision);
  return precision;
}

/// Runs the command rest[0] with the arguments after it.
int dispatch_command(const std::vector<std::string>& rest, const std::string& device,
                     const std::string& precision, std::ostream& out, std::ostream& err) {
  const std::string& name = rest.front();
  for (auto& c : commands()) {
    if (c.name == name) {
      if (!precision.empty() && name != "inpaint" && name != "run") {
        throw UsageError("--precision applies to inpaint and run, not '" + name + "'");
      }
      CommandContext ctx{std::vector<std::string>(rest.begin() + 1, rest.end()), out, err, device,
                         precision};
      return c.run(ctx);
    }
  }
  std::vector<std::string> names;
  for (const auto& c : commands()) names.push_back(c.name);
  throw UsageError("unknown command '" + name + "'; valid: " + join_names(names));
}

}  // namespace

void add_command(Command command) {
  for (auto& c : commands()) {
    if (c.name == command.name) {
      c = std::move(command);
      return;
    }
  }
  commands().push_back(std::move(command));
}

int run_cli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  ensure_builtin_commands();
  register_all();
  try {
    const auto [global_args, rest] = split_global_args(argv);
    const auto opts = global_options();
    po::variables_map vm;
    po::store(po::command_line_parser(global_args).options(opts).run(), vm);
    po::notify(vm);
    if (vm.count("version")) {
      out << version_text();
      return 0;
    }
    if (vm.count("help") || rest.empty()) {
      print_help(rest.empty() && !vm.count("help") ? err : out);
      return vm.count("help") ? 0 : 2;
    }
    const std::string precision = apply_global_options(vm);
    return dispatch_command(rest, vm["device"].as<std::string>(), precision, out, err);
  } catch (const UsageError& e) {
    err << "copaint: " << e.what() << "\n";
    return 2;
  } catch (const po::error& e) {
    err << "copaint: " << e.what() << "\n";
    return 2;
  } catch (const InputError& e) {
    err << "copaint: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    err << "copaint: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace copaint
