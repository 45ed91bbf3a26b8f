// Reading the reference's recorded files: JSON, plain dicts written by torch.save, a UNet
// architecture in guided-diffusion's flag names, and a CoPaint config in the reference's YAML keys.
#pragma once

#include <map>
#include <string>

#include <ATen/core/ivalue.h>
#include <nlohmann/json.hpp>

#include "framework/nn/unet.h"
#include "methods/copaint.h"

namespace copaint {

/// Parses a JSON file; InputError names the file when it is missing or malformed.
nlohmann::json read_json(const std::string& path);

/// A plain dict (tensors, lists, strings) written by torch.save; InputError when unreadable.
c10::IValue read_pickled_dict(const std::string& path);

/// UNetConfig from a fixture's "config" object (keys named as guided-diffusion's script flags;
/// channel_mult and dropout may be absent).
UNetConfig unet_config_from_json(const nlohmann::json& config);

/// A recording's settings as the reference's dotted keys with their values as text (a key's
/// " (default)" mark dropped; booleans true/false, numbers as JSON writes them).
std::map<std::string, std::string> reference_settings(const nlohmann::json& settings);

/// CoPaintParams from the reference's config (every key through methods/reference_config.h: one
/// it cannot map is a UsageError naming it), batch-coupled as the reference.
CoPaintParams copaint_params_from_reference_config(const nlohmann::json& config);

}  // namespace copaint
