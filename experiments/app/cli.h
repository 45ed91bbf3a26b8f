// The `copaint` command line: global options, subcommand dispatch, and `list`/`--version`.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace copaint {

/// Arguments a subcommand receives after the global options are handled.
struct CommandContext {
  std::vector<std::string> args;  ///< the subcommand's own arguments
  std::ostream& out;
  std::ostream& err;
  std::string device;     ///< the global --device value (auto | cpu | cuda[:N])
  std::string precision;  ///< the global --precision value (empty = the model's setting)
};

/// One subcommand of `copaint`.
struct Command {
  std::string name;
  std::string summary;  ///< one line for `copaint --help`
  std::function<int(CommandContext&)> run;
};

/// Adds a subcommand (later issues add inpaint, run, report, train, inspect).
void add_command(Command command);

/// Adds `train` (experiments/app/train_command.cpp).
void register_train_command();

/// Adds `export-inputs`, `score` and `import-config` (experiments/app/external_command.cpp).
void register_external_commands();

/// Registers every built-in method, metric, dataset, mask and model (idempotent).
void register_all();

/// Runs the CLI; returns the process exit code (0 ok, 1 runtime/input error, 2 usage error).
int run_cli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace copaint
