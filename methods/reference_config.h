// The reference's config keys (UCSB-NLP-Chang/CoPaint: its YAML files, command-line overrides and
// the settings its recordings carry) and what each means for our methods: the option it sets, or
// the one value we reproduce. One table for `copaint import-config` and `copaint verify`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "framework/core/options.h"

namespace copaint {

/// One reference key as a method of ours reads it.
struct ReferenceKey {
  std::string theirs;  ///< the reference's dotted key, e.g. "dps.step_size"
  std::string ours;    ///< the option it sets; empty: none (then `value` is what we reproduce)
  /// With `ours`: the reference's default that is ours too (import-config leaves it out).
  /// Without: the only value we reproduce; "*" any (the sampler does not read it, or a run-level
  /// key such as seed). Either may be "$key": the value of that other reference key.
  std::string value;
};

/// Our method for the reference's algorithm (o_ddim: copaint, or copaint_tt with time travel);
/// UsageError for an unknown algorithm.
std::string method_for_algorithm(const std::string& algorithm, bool time_travel);

/// Every reference key the reference's sampler for `method` (our registry name) reads, in the
/// order import-config writes them. UsageError for a method the reference does not have.
const std::vector<ReferenceKey>& reference_keys(const std::string& method);

/// The entry of `method` for `theirs`, or nullptr.
const ReferenceKey* find_reference_key(const std::string& method, const std::string& theirs);

/// Whether two values are the same setting (numbers by value, booleans in any spelling).
bool same_reference_value(const std::string& a, const std::string& b);

/// Our options for `method` from the reference's settings (dotted keys, values as text): each key
/// through its entry. UsageError, one line naming the key, for a key with no entry or with a
/// value other than the one we reproduce.
Options options_from_reference(const std::string& method,
                               const std::map<std::string, std::string>& settings);

}  // namespace copaint
