// Every setting a recording carries is replayed: each key of a recording's JSON goes through the
// table import-config uses (methods/reference_config.h); changing a mapped setting changes the
// replayed option and makes the replay fail, and a setting that cannot be mapped is refused with
// one line naming it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "framework/core/error.h"
#include "methods/reference_config.h"
#include "methods/verify/baseline_replay.h"
#include "methods/verify/fixture_io.h"
#include "methods/verify/verify.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;
const fs::path kFixtures(COPAINT_TEST_FIXTURES_DIR);

/// Another valid-looking value for a setting: booleans flipped, numbers moved, the mode swapped.
nlohmann::json other_value(const std::string& key, const nlohmann::json& v) {
  if (key == "mode") return v == "inpaint" ? "super_resolution" : "inpaint";
  if (key == "timestep_respacing") return std::to_string(std::stoi(v.get<std::string>()) + 1);
  if (v.is_boolean()) return !v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() + 2;
  if (v.is_number()) return v.get<double>() / 2 + 0.125;
  if (key.find("schedule_type") != std::string::npos) return v == "linear" ? "quad" : "linear";
  return v.get<std::string>() + "_other";
}

/// The JSON value of a flattened settings key (its " (default)" mark kept in the JSON).
nlohmann::json* find_setting(nlohmann::json& settings, const std::string& flat) {
  const auto name_of = [](const std::string& key) { return key.substr(0, key.find(" (")); };
  for (auto& [key, value] : settings.items()) {
    if (name_of(key) == flat) return &value;
  }
  for (auto& [key, value] : settings.items()) {
    const std::string name = name_of(key);
    if (value.is_object() && flat.rfind(name + ".", 0) == 0) {
      if (auto* found = find_setting(value, flat.substr(name.size() + 1))) return found;
    }
  }
  return nullptr;
}

const std::vector<std::string> kBaselines = {
    "ddim_half", "resample_half_p4", "repaint_half", "repaint_expand", "ddnm_half", "ddnm_expand",
    "ddrm_half", "dps_half_n2",      "ddnm_sr2",     "ddrm_sr2",       "dps_sr2"};

// Each setting of each recording: a mapped one sets our option to the changed value; one we only
// reproduce at one value is refused when changed, naming the key; an unknown key is refused.
TEST(ReferenceSettings, EverySettingOfEveryRecordingIsMappedOrRefused) {
  int64_t mapped = 0, fixed = 0;
  for (const auto& name : kBaselines) {
    SCOPED_TRACE(name);
    BaselineRecording rec = load_baseline_recording((kFixtures / "baselines" / (name + ".json")));
    const nlohmann::json original = rec.json;
    const std::string method = baseline_case(rec).method;
    for (const auto& [key, text] : reference_settings(original.at("settings"))) {
      const ReferenceKey* k = find_reference_key(method, key);
      ASSERT_NE(k, nullptr) << key;
      rec.json = original;
      nlohmann::json* found = find_setting(rec.json["settings"], key);
      ASSERT_NE(found, nullptr) << key;
      nlohmann::json& v = *found;
      v = other_value(key, v);
      const std::string changed = v.is_string() ? v.get<std::string>() : v.dump();
      // Super-resolution needs a scale; keys that must equal this one follow it (ddpm_num_steps
      // = the respaced size).
      if (key == "mode" && v == "super_resolution") rec.json["settings"]["scale"] = 2;
      for (const ReferenceKey& other : reference_keys(method)) {
        nlohmann::json* tied = find_setting(rec.json["settings"], other.theirs);
        if (other.ours.empty() && other.value == "$" + key && tied) *tied = std::stoi(changed);
      }
      if (!k->ours.empty()) {
        if (key == "mode" && name == "ddrm_sr2") {
          // DDRM's inpainting replay needs the kept/missing indices a super-resolution run
          // does not record: refused, naming what is missing.
          EXPECT_THROW(baseline_case(rec), InputError);
          continue;
        }
        const BaselineCase c = baseline_case(rec);
        EXPECT_TRUE(same_reference_value(c.settings.get(k->ours), changed))
            << key << " -> " << k->ours << " = " << c.settings.get(k->ours) << ", not " << changed;
        ++mapped;
      } else if (k->value != "*") {
        try {
          baseline_case(rec);
          ADD_FAILURE() << key << " = " << changed << " was accepted";
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("'" + key), std::string::npos) << e.what();
        }
        ++fixed;
      }
    }
    rec.json = original;
    rec.json["settings"]["no_such_setting"] = 1;
    EXPECT_THROW(
        {
          try {
            baseline_case(rec);
          } catch (const InputError& e) {
            EXPECT_NE(std::string(e.what()).find("'no_such_setting'"), std::string::npos);
            throw;
          }
        },
        InputError);
  }
  // CoPaint's configs through the same table (copaint, or copaint_tt with time travel).
  for (const char* name : {"copaint_g2_n1", "copaint_tt_j10", "copaint_sr2"}) {
    SCOPED_TRACE(name);
    const auto settings = reference_settings(
        read_json((kFixtures / "copaint" / (std::string(name) + ".json")).string()).at("config"));
    const std::string method = method_for_algorithm(
        "o_ddim", settings.at("ddim.schedule_params.use_timetravel") == "true");
    for (const auto& [key, text] : settings) {
      const ReferenceKey* k = find_reference_key(method, key);
      ASSERT_NE(k, nullptr) << key;
      if (k->ours.empty()) continue;
      auto changed = settings;
      changed[key] = text + "1";  // 0.02 -> 0.021, 50 -> 501, linear -> linear1, true -> true1
      for (const ReferenceKey& other : reference_keys(method)) {
        if (other.ours.empty() && other.value == "$" + key) changed[other.theirs] = text + "1";
      }
      EXPECT_EQ(options_from_reference(method, changed).get(k->ours), text + "1") << key;
      ++mapped;
    }
  }
  EXPECT_GT(mapped, 80);
  EXPECT_GT(fixed, 20);
}

/// A recording copied to a scratch fixtures root with `edit` applied to its JSON.
class EditedRecording {
 public:
  EditedRecording(const std::string& folder, const std::string& name,
                  const std::function<void(nlohmann::json&)>& edit)
      : root_(fs::temp_directory_path() / ("copaint_settings_" + name)) {
    fs::remove_all(root_);
    fs::create_directories(root_ / folder);
    fs::create_directory_symlink(kFixtures / "unet", root_ / "unet");
    fs::create_symlink(kFixtures / folder / (name + ".pt"), root_ / folder / (name + ".pt"));
    nlohmann::json j = read_json((kFixtures / folder / (name + ".json")).string());
    edit(j);
    std::ofstream(root_ / folder / (name + ".json")) << j.dump();
    path_ = (root_ / folder / (name + ".json")).string();
  }
  ~EditedRecording() { fs::remove_all(root_); }
  const std::string& path() const { return path_; }

 private:
  fs::path root_;
  std::string path_;
};

VerifyResult verify_edited(const std::string& folder, const std::string& name,
                           const std::function<void(nlohmann::json&)>& edit) {
  const EditedRecording rec(folder, name, edit);
  VerifyOptions o;
  o.end_to_end = false;
  o.step_stride = 5;
  return verify_case(rec.path(), o);
}

/// Whether the edited recording no longer replays: a failed check, or a draw or shape mismatch.
bool replay_fails(const std::string& folder, const std::string& name,
                  const std::function<void(nlohmann::json&)>& edit) {
  try {
    return !verify_edited(folder, name, edit).passed;
  } catch (const std::exception&) {
    return true;
  }
}

// The replay follows a changed setting: the recording no longer matches (it was made with the
// original value), where an ignored setting would still pass.
TEST(ReferenceSettings, TheReplayFollowsAChangedSetting) {
  const VerifyResult same = verify_edited("baselines", "dps_sr2", [](nlohmann::json&) {});
  EXPECT_TRUE(same.passed) << same.failure;
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> edits = {
      {"dps_sr2 dps.step_size 0.5",
       [](nlohmann::json& j) { j["settings"]["dps"]["step_size"] = 0.5; }},
      {"dps_sr2 dps.eta 0.5", [](nlohmann::json& j) { j["settings"]["dps"]["eta"] = 0.5; }},
      {"dps_sr2 scale 4", [](nlohmann::json& j) { j["settings"]["scale"] = 4; }},
      {"ddnm_sr2 ddnm.eta 0.5",
       [](nlohmann::json& j) { j["settings"]["ddnm.eta (default)"] = 0.5; }},
      {"ddnm_sr2 ddnm.sigma_y 0.5",
       [](nlohmann::json& j) { j["settings"]["ddnm.sigma_y (default)"] = 0.5; }},
      {"ddnm_sr2 mode inpaint", [](nlohmann::json& j) { j["settings"]["mode"] = "inpaint"; }},
      {"ddnm_sr2 clip_denoised false",
       [](nlohmann::json& j) { j["settings"]["clip_denoised"] = false; }},
  };
  for (const auto& [what, edit] : edits) {
    const std::string name = what.substr(0, what.find(' '));
    EXPECT_TRUE(replay_fails("baselines", name, edit)) << what << ": the replay ignored it";
  }
  // CoPaint's config: the scale and a learning rate.
  EXPECT_TRUE(replay_fails("copaint", "copaint_sr2", [](nlohmann::json& j) {
    j["config"]["scale"] = 4;
  })) << "copaint_sr2 scale 4";
  EXPECT_TRUE(replay_fails("copaint", "copaint_sr2", [](nlohmann::json& j) {
    j["config"]["optimize_xt"]["lr_xt"] = 0.05;
  })) << "copaint_sr2 lr_xt 0.05";
  // A setting we cannot reproduce is refused, naming it.
  try {
    verify_edited("baselines", "dps_sr2",
                  [](nlohmann::json& j) { j["settings"]["dps.noise_type (default)"] = "poisson"; });
    ADD_FAILURE() << "dps.noise_type = poisson was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'dps.noise_type = poisson'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace copaint
