// Settings from INI-style files (Boost.Program_options) merged with `--set key=value` overrides.
#pragma once

#include <string>
#include <vector>

#include "framework/options.h"

namespace copaint {

/// Reads an INI-style file: `key = value` lines, `[section]` headers prefixing keys with
/// `section.`, `#` comments. Throws InputError naming the file when it is missing or malformed.
Options load_ini_file(const std::string& path);

/// Same, from text (`source` names it in errors).
Options parse_ini_text(const std::string& text, const std::string& source);

/// Files in order (later wins), then the command-line assignments (which win over every file).
Options resolve_settings(const std::vector<std::string>& files,
                         const std::vector<std::string>& assignments);

}  // namespace copaint
