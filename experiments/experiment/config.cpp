// INI loading through Boost.Program_options and the file + command-line merge.
#include "experiments/experiment/config.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
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
    throw InputError(source + ": " + printable(e.what()));
  }
  return out;
}

std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  return out;
}

std::string read_settings_text(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InputError(what + " '" + path + "' is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + what + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte order mark
  int line = 1;
  for (unsigned char c : text) {
    if (c == '\n') ++line;
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02X", c);
      throw InputError(what + " '" + path + "': not a text file (byte " + code + " on line " +
                       std::to_string(line) + ")");
    }
  }
  return text;
}

Options load_ini_file(const std::string& path) {
  return parse_ini_text(read_settings_text(path, "config file"), path);
}

Options resolve_settings(const std::vector<std::string>& files,
                         const std::vector<std::string>& assignments) {
  Options out;
  for (const auto& f : files) out.merge(load_ini_file(f));
  out.merge(parse_assignments(assignments));
  return out;
}

}  // namespace copaint
