// Settings from INI-style files (Boost.Program_options) merged with `--set key=value` overrides.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "framework/core/options.h"

namespace copaint {

/// The line of every key of an INI text (`[s]` prefixes keys with `s.`, `#` starts a comment).
/// A key given twice, or a section header repeated, throws UsageError naming both lines.
std::map<std::string, int> ini_key_lines(const std::string& text, const std::string& source);

/// The text of a settings file (`what` names it in errors: "experiment file", "config file"):
/// InputError for a missing file, a folder, or bytes that are not text (a NUL or another control
/// character, named by line and code, never echoed); a UTF-8 byte order mark is dropped.
std::string read_settings_text(const std::string& path, const std::string& what);

/// `text` with bytes outside printable ASCII (control characters, NUL, UTF-8) as \xNN: safe to
/// print in a one-line message.
std::string printable(const std::string& text);

/// Reads an INI-style file: `key = value` lines, `[section]` headers prefixing keys with
/// `section.`, `#` comments. Throws InputError naming the file when it is missing or malformed,
/// UsageError naming both lines when a key or a section repeats.
Options load_ini_file(const std::string& path);

/// Same, from text (`source` names it in errors).
Options parse_ini_text(const std::string& text, const std::string& source);

/// Files in order (later wins), then the command-line assignments (which win over every file).
Options resolve_settings(const std::vector<std::string>& files,
                         const std::vector<std::string>& assignments);

}  // namespace copaint
