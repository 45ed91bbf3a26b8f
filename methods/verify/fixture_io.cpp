// JSON, torch.save dicts and the reference's config keys (fixture_io.h).
#include "methods/verify/fixture_io.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>
#include <iterator>
#include <map>
#include <vector>

#include "framework/core/error.h"
#include "framework/core/registry.h"
#include "methods/reference_config.h"

namespace copaint {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read '" + path + "'");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("'" + path + "' is not valid JSON: " + e.what());
  }
}

c10::IValue read_pickled_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read '" + path + "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const std::exception& e) {
    throw InputError("'" + path + "' is not a torch.save'd dict: " + e.what());
  }
  if (!value.isGenericDict()) throw InputError("'" + path + "' does not hold a dict");
  return value;
}

UNetConfig unet_config_from_json(const nlohmann::json& j) {
  UNetConfig c;
  c.image_size = j.at("image_size");
  c.num_channels = j.at("num_channels");
  c.num_res_blocks = j.at("num_res_blocks");
  c.channel_mult = j.value("channel_mult", std::string());
  c.learn_sigma = j.at("learn_sigma");
  c.class_cond = j.at("class_cond");
  c.attention_resolutions = j.at("attention_resolutions");
  c.num_heads = j.at("num_heads");
  c.num_head_channels = j.at("num_head_channels");
  c.use_scale_shift_norm = j.at("use_scale_shift_norm");
  c.resblock_updown = j.at("resblock_updown");
  c.dropout = j.value("dropout", 0.0);
  return c;
}

namespace {

void flatten(const nlohmann::json& j, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (const auto& [key, value] : j.items()) {
    std::string name = key;
    if (const auto mark = name.find(" ("); mark != std::string::npos) name.erase(mark);
    name = prefix + name;
    if (value.is_object()) {
      flatten(value, name + ".", out);
    } else if (value.is_string()) {
      out[name] = value.get<std::string>();
    } else if (value.is_null()) {
      out[name] = "";
    } else {
      out[name] = value.dump();  // numbers as JSON writes them, booleans as true/false
    }
  }
}

}  // namespace

std::map<std::string, std::string> reference_settings(const nlohmann::json& settings) {
  std::map<std::string, std::string> out;
  flatten(settings, "", out);
  return out;
}

CoPaintParams copaint_params_from_reference_config(const nlohmann::json& cfg) {
  const auto settings = reference_settings(cfg);
  const auto tt = settings.find("ddim.schedule_params.use_timetravel");
  const std::string method = method_for_algorithm(
      "o_ddim", tt != settings.end() && same_reference_value(tt->second, "true"));
  register_builtin_methods();
  const auto created =
      Registry<Method>::global().create(method, options_from_reference(method, settings));
  CoPaintParams p = dynamic_cast<const CoPaint&>(*created).params();
  p.batch_coupled = true;
  return p;
}

}  // namespace copaint
