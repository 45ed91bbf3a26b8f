// INI loading through Boost.Program_options and the file + command-line merge.
#include "experiments/experiment/config.h"

#include <cctype>
#include <fstream>
#include <sstream>

#include <boost/program_options/parsers.hpp>

#include "framework/core/error.h"
#include "framework/core/options.h"

namespace copaint {

std::map<std::string, int> ini_key_lines(const std::string& text, const std::string& source) {
  std::map<std::string, int> keys, sections;
  std::istringstream in(text);
  std::string line, prefix;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (line.empty()) continue;
    const std::string at = source + ":" + std::to_string(n) + ": ";
    if (line.front() == '[' && line.back() == ']') {
      const std::string s = trim(line.substr(1, line.size() - 2));
      const auto [it, fresh] = sections.emplace(s, n);
      if (!fresh) {
        throw UsageError(at + "section [" + s + "] repeats the one at line " +
                         std::to_string(it->second) + "; merge them into one");
      }
      prefix = s.empty() ? "" : s + ".";
      continue;
    }
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;  // the parser reports it
    const std::string key = prefix + trim(line.substr(0, eq));
    const auto [it, fresh] = keys.emplace(key, n);
    if (!fresh) {
      throw UsageError(at + "duplicate key '" + key + "' (already given at line " +
                       std::to_string(it->second) + "); keep one");
    }
  }
  return keys;
}

Options parse_ini_text(const std::string& text, const std::string& source) {
  namespace po = boost::program_options;
  ini_key_lines(text, source);  // duplicates are an error, not "last wins"
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
