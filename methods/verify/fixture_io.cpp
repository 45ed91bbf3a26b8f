// JSON, torch.save dicts and the reference's config keys (fixture_io.h).
#include "methods/verify/fixture_io.h"

#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "framework/core/error.h"

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

CoPaintParams copaint_params_from_reference_config(const nlohmann::json& cfg) {
  const auto& sp = cfg.at("ddim").at("schedule_params");
  const auto& o = cfg.at("optimize_xt");
  CoPaintParams p;
  p.respacing = cfg.at("timestep_respacing");
  p.steps = sp.at("num_inference_steps");
  const std::string spacing = sp.at("schedule_type");
  if (spacing != "linear" && spacing != "quad") {
    throw UsageError("fixture: unknown schedule_type '" + spacing + "'");
  }
  p.schedule_type = spacing == "quad" ? ScheduleType::kQuad : ScheduleType::kLinear;
  p.time_travel = sp.at("use_timetravel");
  p.jump_length = sp.at("jump_length");
  p.jump_n_sample = sp.at("jump_n_sample");
  p.time_travel_filter = sp.at("time_travel_filter_type");
  p.eta = cfg.at("ddim").at("ddim_sigma");
  p.G = o.at("num_iteration_optimize_xt");
  p.lr_xt = o.at("lr_xt");
  p.lr_xt_decay = o.at("lr_xt_decay");
  p.coef_xt_reg = o.at("coef_xt_reg");
  p.coef_xt_reg_decay = o.at("coef_xt_reg_decay");
  p.smart_lr = o.at("use_smart_lr_xt_decay");
  p.adaptive_lr = o.at("use_adaptive_lr_xt");
  p.mid_interval_num = o.at("mid_interval_num");
  p.optimize_before_time_travel = o.at("optimize_before_time_travel");
  p.batch_coupled = true;
  return p;
}

}  // namespace copaint
