// Parsing a subcommand's arguments with Boost.Program_options: the parse, the positional
// names and notify in one place for every command (each command keeps its own --help text).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <boost/program_options.hpp>

#include "experiments/app/cli.h"

namespace copaint {

/// Parses ctx.args against `options` with the positional arguments `positionals` (name and how
/// many values: -1 = the rest). With `notify`, required options and notifiers run too (leave it
/// off for a command that must print --help before checking them).
boost::program_options::variables_map parse_command_args(
    const CommandContext& ctx, const boost::program_options::options_description& options,
    const std::vector<std::pair<const char*, int>>& positionals = {}, bool notify = true);

}  // namespace copaint
