// Experiment files: validation with line numbers, the axis rule and the grid expansion.
#include "experiments/experiment/experiment.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "datasets/dataset.h"
#include "datasets/mask.h"
#include "experiments/experiment/config.h"
#include "framework/core/error.h"
#include "framework/core/log.h"
#include "framework/core/options.h"
#include "framework/core/registry.h"
#include "framework/diffusion/model.h"
#include "framework/nn/models.h"
#include "methods/method.h"
#include "metrics/metric.h"
#include "metrics/set_metric.h"

namespace copaint {
namespace {

std::string join(const std::vector<std::string>& items, const char* sep = ",") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

/// Where a key was given: "file:line" or "--set key".
class Where {
 public:
  /// `located`: "file:line" of every key a file gave (the last file that gave it).
  Where(std::string source, std::map<std::string, std::string> located,
        std::set<std::string> overridden)
      : source_(std::move(source)),
        located_(std::move(located)),
        overridden_(std::move(overridden)) {}
  std::string at(const std::string& key) const {
    if (overridden_.count(key)) return "--set " + key;
    auto it = located_.find(key);
    if (it != located_.end()) return it->second;
    return source_;
  }
  [[noreturn]] void fail(const std::string& key, const std::string& message) const {
    throw UsageError(at(key) + ": " + message);
  }
  /// The keys given by --set.
  const std::set<std::string>& overridden() const { return overridden_; }

 private:
  std::string source_;
  std::map<std::string, std::string> located_;
  std::set<std::string> overridden_;
};

template <class T>
std::vector<std::string> checked_names(const Options& config, const std::string& key,
                                       const Where& where, bool required) {
  if (!config.has(key)) {
    if (required) {
      throw UsageError(where.at(key) + ": missing key '" + key + "' (valid " + T::kRegistryKind +
                       " names: " + join_names(Registry<T>::global().names()) + ")");
    }
    return {};
  }
  const std::vector<std::string> names = config.get_list(key);
  if (names.empty() && required) where.fail(key, "'" + key + "' is empty");
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (!Registry<T>::global().contains(n)) {
      where.fail(key, std::string("unknown ") + T::kRegistryKind + " '" + n +
                          "'; valid: " + join_names(Registry<T>::global().names()));
    }
    if (!seen.insert(n).second) where.fail(key, "'" + n + "' is listed twice");
  }
  return names;
}

int64_t checked_int(const Options& config, const std::string& key, int64_t fallback,
                    int64_t minimum, const Where& where) {
  if (!config.has(key)) return fallback;
  int64_t v = 0;
  try {
    v = config.get_int(key);
  } catch (const UsageError& e) {
    where.fail(key, e.what());
  }
  if (v < minimum) where.fail(key, "'" + key + "' must be >= " + std::to_string(minimum));
  return v;
}

/// The option specs of a registry entry as a key set.
template <class T>
bool has_option(const std::string& name, const std::string& key) {
  for (const auto& spec : Registry<T>::global().at(name).options) {
    if (spec.key == key) return true;
  }
  return false;
}

template <class T>
std::vector<std::string> option_keys(const std::string& name) {
  std::vector<std::string> keys;
  for (const auto& spec : Registry<T>::global().at(name).options) keys.push_back(spec.key);
  return keys;
}

bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

/// Where `word` first occurs in `text` as a whole identifier (npos when it does not).
size_t word_at(const std::string& text, const std::string& word) {
  for (size_t p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) {
    const bool left = p == 0 || !is_ident(text[p - 1]);
    const bool right = p + word.size() >= text.size() || !is_ident(text[p + word.size()]);
    if (left && right) return p;
  }
  return std::string::npos;
}

/// Whether `word` occurs in `text` as a whole identifier.
bool has_word(const std::string& text, const std::string& word) {
  return word_at(text, word) != std::string::npos;
}

/// The key to blame for an error of entry `entry`: `key`, unless a rule between its options broke
/// with another of them given by --set (the --set changed what the file's line meant): a --set
/// key the message names, else, when the message does not name `key` either, any --set key of
/// the entry.
std::string rule_key(const Where& where, const std::string& entry, const std::string& key,
                     const std::string& message) {
  if (where.overridden().count(key)) return key;
  std::string any;
  for (const auto& k : where.overridden()) {
    if (k.rfind(entry + ".", 0) != 0) continue;
    if (has_word(message, k) || has_word(message, k.substr(entry.size() + 1))) return k;
    if (any.empty()) any = k;
  }
  const std::string own = key.rfind(entry + ".", 0) == 0 ? key.substr(entry.size() + 1) : key;
  return any.empty() || has_word(message, own) ? key : any;
}

/// Resolves the options of entry `name`, naming the line of a key the message mentions: one
/// named in quotes, else the one named as a word first (a rule between options names its keys).
template <class T>
Options resolve_at(const std::string& name, const Options& user, const Where& where) {
  try {
    return Registry<T>::global().resolve(name, user);
  } catch (const UsageError& e) {
    const std::string what = e.what();
    for (const auto& [k, v] : user.values()) {
      if (what.find("'" + name + "." + k + "'") != std::string::npos ||
          what.find("'" + k + "'") != std::string::npos)
        where.fail(rule_key(where, name, name + "." + k, what), what);
    }
    size_t first = std::string::npos;
    std::string blamed;
    for (const auto& [k, v] : user.values()) {
      const size_t at = word_at(what, k);
      if (at < first) {
        first = at;
        blamed = k;
      }
    }
    if (!blamed.empty()) where.fail(rule_key(where, name, name + "." + blamed, what), what);
    throw UsageError(where.at(name) + ": " + what);
  }
}

/// The key of method `m` that an error message most likely refers to (for its line number):
/// one named in quotes, else one named as a word, else an axis whose value is quoted; else
/// `methods`.
std::string blamed_key(const std::string& m, const std::string& what, const Options& user,
                       const std::vector<std::pair<std::string, std::string>>& axes) {
  for (const auto& [k, v] : user.values()) {
    if (what.find("'" + k + "'") != std::string::npos) return m + "." + k;
  }
  for (const auto& [k, v] : user.values()) {
    if (has_word(what, k)) return m + "." + k;
  }
  for (const auto& [k, v] : axes) {
    if (what.find("'" + v + "'") != std::string::npos) return m + "." + k;
  }
  return "methods";
}

/// Registry kind of a name used in the experiment ("" when not used).
struct Scope {
  std::string kind;
  std::string name;
};

bool valid_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

}  // namespace

const std::vector<std::string>& experiment_top_level_keys() {
  static const std::vector<std::string> keys = {"name",       "model",    "dataset", "methods",
                                                "masks",      "seeds",    "samples", "metrics",
                                                "batch_size", "mask_seed"};
  return keys;
}

bool is_axis_key(const std::string& key, const std::vector<std::string>& methods) {
  if (key == "dataset" || key == "methods" || key == "masks" || key == "seeds") return true;
  const auto dot = key.find('.');
  if (dot == std::string::npos) return false;
  return std::find(methods.begin(), methods.end(), key.substr(0, dot)) != methods.end();
}

std::string ExperimentCell::axes_label() const {
  std::string out;
  for (const auto& [k, v] : axes) out += (out.empty() ? "" : ", ") + k + "=" + v;
  return out;
}

std::string ExperimentCell::label() const {
  const std::string a = axes_label();
  return method + (a.empty() ? "" : " [" + a + "]") + " / " + mask + " / seed " +
         std::to_string(seed);
}

std::string ExperimentCell::key() const {
  Options ds = dataset_settings;
  ds.erase("count");
  std::ostringstream os;
  os << "model=" << model << "\n"
     << model_settings_for_results(model_settings).canonical() << "dataset=" << dataset << "\n"
     << ds.canonical() << "mask=" << mask << "\n"
     << mask_settings.canonical() << "mask_seed=" << mask_seed << "\n"
     << "method=" << method << "\n"
     << method_settings.canonical() << "seed=" << seed << "\n";
  return fnv1a_hex(os.str());
}

std::string Experiment::where(const std::vector<std::string>& keys) const {
  for (const auto& k : keys) {
    auto it = origin.find(k);
    if (it != origin.end()) return it->second;
  }
  return source;
}

Experiment parse_experiment(const std::string& text, const std::string& source,
                            const std::vector<std::string>& overrides) {
  return parse_experiment(text, source, {}, overrides);
}

namespace {

/// The experiment's settings: the file, then each layer (--config), then the overrides (--set);
/// `where` learns the file:line (or --set) of every key.
Options read_layers(const std::string& text, const std::string& source,
                    const std::vector<ConfigLayer>& layers,
                    const std::vector<std::string>& overrides, std::unique_ptr<Where>* where) {
  Options config = parse_ini_text(text, source);
  std::map<std::string, std::string> located;
  for (const auto& [k, n] : ini_key_lines(text, source))
    located[k] = source + ":" + std::to_string(n);
  for (const auto& layer : layers) {
    config.merge(parse_ini_text(layer.text, layer.source));
    for (const auto& [k, n] : ini_key_lines(layer.text, layer.source))
      located[k] = layer.source + ":" + std::to_string(n);
  }
  const Options over = parse_assignments(overrides);
  std::set<std::string> overridden;
  for (const auto& [k, v] : over.values()) overridden.insert(k);
  config.merge(over);
  *where = std::make_unique<Where>(source, std::move(located), overridden);
  return config;
}

std::vector<int64_t> read_seeds(const Options& config, const Where& where) {
  if (!config.has("seeds")) return {0};
  std::vector<int64_t> seeds;
  std::set<int64_t> seen;
  for (const auto& s : config.get_list("seeds")) {
    Options one{{"seed", s}};
    int64_t v = 0;
    try {
      v = one.get_int("seed");
    } catch (const UsageError&) {
      where.fail("seeds", "seed '" + s + "' is not an integer");
    }
    if (v < 0) where.fail("seeds", "seeds must be >= 0, got " + s);
    if (!seen.insert(v).second) where.fail("seeds", "seed " + s + " is listed twice");
    seeds.push_back(v);
  }
  if (seeds.empty()) where.fail("seeds", "'seeds' is empty");
  return seeds;
}

/// `metrics`: each name is a per-sample metric (Registry<Metric>) or else a metric over a set
/// (Registry<SetMetric>: fid, kid); an unknown name lists both kinds.
void read_metric_names(const Options& config, const Where& where, Experiment& ex) {
  if (!config.has("metrics")) return;
  std::set<std::string> seen;
  for (const auto& n : config.get_list("metrics")) {
    if (Registry<Metric>::global().contains(n)) {
      ex.metrics.push_back(n);
    } else if (Registry<SetMetric>::global().contains(n)) {
      ex.set_metrics.push_back(n);
    } else {
      where.fail("metrics",
                 "unknown metric '" + n +
                     "'; valid: " + join_names(Registry<Metric>::global().names()) +
                     "; over a set: " + join_names(Registry<SetMetric>::global().names()));
    }
    if (!seen.insert(n).second) where.fail("metrics", "'" + n + "' is listed twice");
    ex.metric_names.push_back(n);
  }
}

/// Options of a metric of either kind (the names never collide).
bool has_metric_option(const std::string& name, const std::string& key) {
  return Registry<Metric>::global().contains(name) ? has_option<Metric>(name, key)
                                                   : has_option<SetMetric>(name, key);
}
std::vector<std::string> metric_option_keys(const std::string& name) {
  return Registry<Metric>::global().contains(name) ? option_keys<Metric>(name)
                                                   : option_keys<SetMetric>(name);
}

/// The top-level keys: name, the entries used, samples, batch size and seeds.
void read_top_level(const Options& config, const std::string& source, const Where& where,
                    Experiment& ex) {
  ex.name =
      config.has("name") ? trim(config.get("name")) : std::filesystem::path(source).stem().string();
  if (!valid_name(ex.name)) {
    where.fail("name",
               "experiment name '" + ex.name +
                   "' must be letters, digits, '.', '_' or '-' (it names the results folder)");
  }
  const auto models = checked_names<Denoiser>(config, "model", where, true);
  if (models.size() != 1) where.fail("model", "exactly one model per experiment");
  ex.model = models.front();
  ex.datasets = checked_names<Dataset>(config, "dataset", where, true);
  ex.methods = checked_names<Method>(config, "methods", where, true);
  ex.masks = checked_names<MaskGenerator>(config, "masks", where, true);
  read_metric_names(config, where, ex);
  ex.samples = checked_int(config, "samples", 1, 1, where);
  constexpr int64_t kMaxSamples = kMaxSamplesWithoutAllowLarge;
  if (ex.samples > kMaxSamples && !allow_large_values()) {
    where.fail("samples", "'samples' = " + std::to_string(ex.samples) + " is above " +
                              std::to_string(kMaxSamples) +
                              " (a bound against typos); pass --allow-large to run it");
  }
  ex.batch_size = checked_int(config, "batch_size", 8, 0, where);
  ex.mask_seed = checked_int(config, "mask_seed", 0, 0, where);
  ex.seeds = read_seeds(config, where);
}

/// Whether `rel` is an option of entry `name` of registry kind `kind`, and the valid ones.
bool scoped_option(const std::string& kind, const std::string& name, const std::string& rel,
                   std::vector<std::string>* keys) {
  using Check = std::pair<bool (*)(const std::string&, const std::string&),
                          std::vector<std::string> (*)(const std::string&)>;
  static const std::map<std::string, Check> kinds = {
      {"model", {has_option<Denoiser>, option_keys<Denoiser>}},
      {"dataset", {has_option<Dataset>, option_keys<Dataset>}},
      {"method", {has_option<Method>, option_keys<Method>}},
      {"mask", {has_option<MaskGenerator>, option_keys<MaskGenerator>}},
      {"metric", {has_metric_option, metric_option_keys}}};
  const Check& c = kinds.at(kind);
  *keys = c.second(name);
  return c.first(name, rel);
}

/// Every key that is not top level must be scoped by a name the experiment uses (keys of a
/// registered entry it does not use are ignored) and be one of that entry's options.
void check_scoped_keys(const Options& config, const Experiment& ex, const Where& where) {
  std::map<std::string, Scope> scopes;
  auto add_scope = [&](const std::string& kind, const std::string& name) {
    scopes.emplace(name, Scope{kind, name});
  };
  add_scope("model", ex.model);
  for (const auto& n : ex.datasets) add_scope("dataset", n);
  for (const auto& n : ex.methods) add_scope("method", n);
  for (const auto& n : ex.masks) add_scope("mask", n);
  for (const auto& n : ex.metric_names) add_scope("metric", n);
  const auto& top = experiment_top_level_keys();
  std::vector<std::string> used;
  for (const auto& [name, s] : scopes) used.push_back(name);
  for (const auto& [key, value] : config.values()) {
    if (std::find(top.begin(), top.end(), key) != top.end()) continue;
    const auto dot = key.find('.');
    const std::string prefix = dot == std::string::npos ? "" : key.substr(0, dot);
    const std::string rel = dot == std::string::npos ? "" : key.substr(dot + 1);
    auto it = scopes.find(prefix);
    if (it == scopes.end()) {
      const bool registered =
          !prefix.empty() && (Registry<Method>::global().contains(prefix) ||
                              Registry<Denoiser>::global().contains(prefix) ||
                              Registry<Dataset>::global().contains(prefix) ||
                              Registry<MaskGenerator>::global().contains(prefix) ||
                              Registry<Metric>::global().contains(prefix) ||
                              Registry<SetMetric>::global().contains(prefix));
      if (registered) {
        log_debug(where.at(key) + ": '" + key + "' ignored: '" + prefix +
                  "' is not used by this experiment");
        continue;
      }
      where.fail(key, "unknown key '" + key + "': not a top-level key (" + join(top, ", ") +
                          ") and not scoped by the experiment's model, datasets, methods, masks "
                          "or metrics (" +
                          join(used, ", ") + ")");
    }
    std::vector<std::string> keys;
    if (!scoped_option(it->second.kind, prefix, rel, &keys)) {
      where.fail(key, "unknown option '" + key + "' for " + it->second.kind + " '" + prefix +
                          "'; valid: " + (keys.empty() ? std::string("(none)") : join_names(keys)));
    }
  }
}

/// The non-axis settings, resolved, and the resolved configuration (axes are added as lists by
/// expand_variants). Masks, datasets, metrics and the model are only resolved here: building
/// them may need files (mask folders, images, weights, checkpoints), which the run checks
/// before any work and a dry run reports.
void resolve_entries(const Options& config, const Where& where, Experiment& ex) {
  ex.model_settings = resolve_at<Denoiser>(ex.model, config.scope(ex.model), where);
  for (const auto& n : ex.datasets)
    ex.dataset_settings[n] = resolve_at<Dataset>(n, config.scope(n), where);
  for (const auto& n : ex.masks)
    ex.mask_settings[n] = resolve_at<MaskGenerator>(n, config.scope(n), where);
  for (const auto& n : ex.metrics)
    ex.metric_settings[n] = resolve_at<Metric>(n, config.scope(n), where);
  for (const auto& n : ex.set_metrics)
    ex.metric_settings[n] = resolve_at<SetMetric>(n, config.scope(n), where);
  Options& cfg = ex.config;
  cfg.set("name", ex.name);
  cfg.set("model", ex.model);
  cfg.set("dataset", join(ex.datasets));
  cfg.set("methods", join(ex.methods));
  cfg.set("masks", join(ex.masks));
  cfg.set("metrics", join(ex.metric_names));
  std::vector<std::string> seed_text;
  for (int64_t s : ex.seeds) seed_text.push_back(std::to_string(s));
  cfg.set("seeds", join(seed_text));
  cfg.set("samples", std::to_string(ex.samples));
  cfg.set("batch_size", std::to_string(ex.batch_size));
  cfg.set("mask_seed", std::to_string(ex.mask_seed));
  cfg.merge(ex.model_settings.prefixed(ex.model));
  for (const auto& [n, o] : ex.dataset_settings) cfg.merge(o.prefixed(n));
  for (const auto& [n, o] : ex.mask_settings) cfg.merge(o.prefixed(n));
  for (const auto& [n, o] : ex.metric_settings) cfg.merge(o.prefixed(n));
}

/// One method's variants: its keyed settings, the swept values, and the forwards of a sample.
struct MethodCells {
  std::string method;
  std::vector<std::pair<Options, std::vector<std::pair<std::string, std::string>>>> variants;
  std::vector<int64_t> forwards;
};

/// The method's settings axes (comma-valued settings) expanded, the first axis varying slowest;
/// every variant is built once to check it (an error names the key it blames). Adds the
/// method's settings, axes as lists, to the resolved configuration `cfg`.
MethodCells expand_variants(const std::string& m, const Options& config, const Where& where,
                            Options& cfg) {
  const Options user = config.scope(m);
  Options fixed;
  std::vector<std::string> axis_keys;
  std::vector<std::vector<std::string>> axis_values;
  Options listed = Registry<Method>::global().resolve(m, {});
  for (const auto& [k, v] : user.values()) {
    const std::vector<std::string> items = split_list(v);
    listed.set(k, v);
    if (items.size() > 1) {
      axis_keys.push_back(k);
      axis_values.push_back(items);
    } else {
      fixed.set(k, items.empty() ? v : items.front());
    }
  }
  cfg.merge(listed.prefixed(m));
  MethodCells mc{m, {}, {}};
  size_t combos = 1;
  for (const auto& vals : axis_values) combos *= vals.size();
  for (size_t combo = 0; combo < combos; ++combo) {
    std::vector<size_t> pick(axis_keys.size());
    size_t rest = combo;
    for (size_t a = axis_keys.size(); a-- > 0;) {
      pick[a] = rest % axis_values[a].size();
      rest /= axis_values[a].size();
    }
    Options user_cell = fixed;
    std::vector<std::pair<std::string, std::string>> axes;
    for (size_t a = 0; a < axis_keys.size(); ++a) {
      user_cell.set(axis_keys[a], axis_values[a][pick[a]]);
      axes.emplace_back(axis_keys[a], axis_values[a][pick[a]]);
    }
    const Options resolved = resolve_at<Method>(m, user_cell, where);
    int64_t forwards = 0;
    try {
      // The plan does not load the model: every registered model is a 1000-step process (the
      // Denoiser::num_train_timesteps default; the model registry declares no other).
      forwards = Registry<Method>::global().at(m).factory(resolved)->expected_forwards(1000);
    } catch (const std::exception& e) {
      const std::string what = e.what();
      const std::string blamed = blamed_key(m, what, user, axes);
      const std::string key = rule_key(where, m, blamed, what);
      std::string label;
      for (const auto& [k, v] : axes) label += (label.empty() ? "" : ", ") + k + "=" + v;
      const std::string message =
          "method '" + m + "'" + (label.empty() ? "" : " [" + label + "]") + ": " + what;
      // A rule between settings (the method's own checks) that a --set broke: both places.
      if (key == blamed && !where.overridden().count(key)) {
        for (const auto& k : where.overridden()) {
          if (k.rfind(m + ".", 0) == 0)
            throw UsageError(where.at(k) + " (with " + where.at(key) + "): " + message);
        }
      }
      where.fail(key, message);
    }
    mc.variants.emplace_back(Registry<Method>::global().keyed(m, resolved), axes);
    mc.forwards.push_back(forwards);
  }
  return mc;
}

/// The grid's cells in its order: datasets x methods x variants x masks x seeds.
void make_cells(const std::vector<MethodCells>& per_method, Experiment& ex) {
  for (const auto& ds : ex.datasets) {
    for (const auto& mc : per_method) {
      for (size_t v = 0; v < mc.variants.size(); ++v) {
        for (const auto& mask : ex.masks) {
          for (int64_t seed : ex.seeds) {
            ExperimentCell c;
            c.index = static_cast<int64_t>(ex.cells.size());
            c.method = mc.method;
            c.method_settings = mc.variants[v].first;
            c.axes = mc.variants[v].second;
            c.dataset = ds;
            c.dataset_settings = ex.dataset_settings.at(ds);
            c.mask = mask;
            c.mask_settings = ex.mask_settings.at(mask);
            c.model = ex.model;
            c.model_settings = ex.model_settings;
            c.seed = seed;
            c.mask_seed = ex.mask_seed;
            c.expected_forwards = mc.forwards[v];
            ex.cells.push_back(std::move(c));
          }
        }
      }
    }
  }
}

/// A super-resolution scale must divide the model's image size (the run refuses it at its first
/// batch otherwise): checked here, so that --dry-run refuses it too.
void check_scales(const Experiment& ex, const Where& where) {
  if (!ex.model_settings.has("image_size")) return;
  const int64_t size = ex.model_settings.get_int("image_size");
  for (const auto& c : ex.cells) {
    if (c.method_settings.get("mode", "") != "super_resolution" || !c.method_settings.has("scale"))
      continue;
    const int64_t scale = c.method_settings.get_int("scale");
    if (scale >= 1 && size % scale != 0) {
      where.fail(c.method + ".scale", c.method + ".scale " + std::to_string(scale) +
                                          " does not divide the model's image size " +
                                          std::to_string(size));
    }
  }
}

}  // namespace

Experiment parse_experiment(const std::string& text, const std::string& source,
                            const std::vector<ConfigLayer>& layers,
                            const std::vector<std::string>& overrides) {
  std::unique_ptr<Where> where;
  const Options config = read_layers(text, source, layers, overrides, &where);
  Experiment ex;
  ex.source = source;
  for (const auto& [k, v] : config.values()) ex.origin[k] = where->at(k);
  read_top_level(config, source, *where, ex);
  check_scoped_keys(config, ex, *where);
  resolve_entries(config, *where, ex);
  std::vector<MethodCells> per_method;
  for (const auto& m : ex.methods)
    per_method.push_back(expand_variants(m, config, *where, ex.config));
  make_cells(per_method, ex);
  check_scales(ex, *where);
  return ex;
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  return load_experiment(path, {}, overrides);
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& config_files,
                           const std::vector<std::string>& overrides) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml") {
    throw UsageError("experiment file '" + path +
                     "' is YAML (the reference's config?); experiments are INI files: convert it "
                     "with `copaint import-config " +
                     path + " --out experiment.ini`");
  }
  const std::string text = read_settings_text(path, "experiment file");
  std::vector<ConfigLayer> layers;
  for (const auto& f : config_files) layers.push_back({f, read_settings_text(f, "config file")});
  return parse_experiment(text, path, layers, overrides);
}

}  // namespace copaint
