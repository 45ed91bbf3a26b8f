// INI loading through Boost.Program_options and the file + command-line merge.
#include "experiments/config.h"

#include <fstream>
#include <sstream>

#include <boost/program_options/parsers.hpp>

#include "framework/error.h"

namespace copaint {

Options parse_ini_text(const std::string& text, const std::string& source) {
  namespace po = boost::program_options;
  std::istringstream in(text);
  po::options_description none;
  Options out;
  try {
    const auto parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    for (const auto& opt : parsed.options) {
      if (opt.value.size() != 1) {
        throw InputError(source + ": option '" + opt.string_key + "' needs exactly one value");
      }
      out.set(opt.string_key, opt.value.front());
    }
  } catch (const boost::program_options::error& e) {
    throw InputError(source + ": " + e.what());
  }
  return out;
}

Options load_ini_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot open config file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_ini_text(ss.str(), path);
}

Options resolve_settings(const std::vector<std::string>& files,
                         const std::vector<std::string>& assignments) {
  Options out;
  for (const auto& f : files) out.merge(load_ini_file(f));
  out.merge(parse_assignments(assignments));
  return out;
}

}  // namespace copaint
