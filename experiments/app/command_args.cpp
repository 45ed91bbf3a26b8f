// parse_command_args.
#include "experiments/app/command_args.h"

namespace po = boost::program_options;

namespace copaint {

po::variables_map parse_command_args(const CommandContext& ctx,
                                     const po::options_description& options,
                                     const std::vector<std::pair<const char*, int>>& positionals,
                                     bool notify) {
  po::positional_options_description pos;
  for (const auto& [name, count] : positionals) pos.add(name, count);
  po::variables_map vm;
  po::store(po::command_line_parser(ctx.args).options(options).positional(pos).run(), vm);
  if (notify) po::notify(vm);
  return vm;
}

}  // namespace copaint
