// Typed JSON views of the results' settings texts, for SQLite's json_extract and pandas'
// json_normalize: numbers as numbers, true/false as booleans, comma lists as arrays.
#pragma once

#include <string>
#include <vector>

namespace copaint {

/// The JSON of one canonical value (Options::canonical's spelling): an integer ("8"), a finite
/// number ("0.02", "1e-05"), a boolean ("true", "false"), an array of those for a comma list
/// ("1,2,2" -> [1,2,2]), else a string.
std::string typed_json_value(const std::string& value);

/// The JSON object of a canonical settings text (`key = value` lines). `nested` splits dotted
/// keys into nested objects ("copaint.G = 2" -> {"copaint": {"G": 2}}); a key that would clash
/// with a value of the same path is kept flat.
std::string settings_text_to_json(const std::string& canonical_text, bool nested = false);

/// The JSON object of a cell's variant label ("G=5, lr_xt=0.02" -> {"G": 5, "lr_xt": 0.02});
/// "{}" for an empty label.
std::string variant_label_to_json(const std::string& label);

/// A JSON array of strings.
std::string json_string_array(const std::vector<std::string>& items);

}  // namespace copaint
