// Completeness of stored results: what each run's grid promised (cells x images x samples, all
// shards) against the ok samples stored, for the report's `[ok/promised]` markers and --strict.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "datasets/dataset.h"
#include "experiments/report/report.h"
#include "framework/core/options.h"
#include "framework/core/registry.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

/// The grid of one stored run configuration.
struct Grid {
  int64_t samples = 1;
  int64_t seeds = 1;
  std::vector<std::string> datasets, methods, masks;
  std::vector<std::string> metrics;      ///< as configured (lpips: stored as lpips_alex_v0.1)
  std::vector<std::string> set_metrics;  ///< metrics over a set (fid, kid)
  std::set<int64_t> seed_values;
  Options config;
  int64_t cells = 0;  ///< datasets x (methods x their settings axes) x masks x seeds
};

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t int_or(const Options& o, const std::string& key, int64_t fallback) {
  try {
    return o.has(key) ? o.get_int(key) : fallback;
  } catch (const std::exception&) {
    return fallback;
  }
}

/// The grid of a run's canonical configuration text; false when it names no grid (no methods).
/// Metrics over a set (`is_set`) go to set_metrics, the others to metrics.
bool parse_grid(const std::string& text, const std::function<bool(const std::string&)>& is_set,
                Grid* g) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) g->config.set(line.substr(0, eq), line.substr(eq + 3));
  }
  g->datasets = split_list(g->config.get("dataset", ""));
  g->methods = split_list(g->config.get("methods", ""));
  for (const auto& m : split_list(g->config.get("metrics", "")))
    (is_set(m) ? g->set_metrics : g->metrics).push_back(m);
  for (const auto& [key, value] : g->config.values()) {  // `copaint score --as NAME`
    if (key.rfind("score.", 0) == 0) g->methods.push_back(key.substr(6));
  }
  g->masks = split_list(g->config.get("masks", ""));
  if (g->datasets.empty() || g->methods.empty() || g->masks.empty()) return false;
  // A `copaint score --as NAME` run (external.cpp) promises NAME's cells of the same grid.
  for (const auto& [key, value] : g->config.values()) {
    if (key.rfind("score.", 0) == 0 && !contains(g->methods, key.substr(6)))
      g->methods.push_back(key.substr(6));
  }
  g->samples = std::max<int64_t>(1, int_or(g->config, "samples", 1));
  for (const auto& s : split_list(g->config.get("seeds", "0"))) {
    g->seed_values.insert(int_or(Options{{"s", s}}, "s", 0));
  }
  g->seeds = std::max<int64_t>(1, static_cast<int64_t>(g->seed_values.size()));
  int64_t variants = 0;
  for (const auto& m : g->methods) {
    int64_t n = 1;  // a comma in a method setting is an axis (experiments/experiment/experiment.h)
    const Options settings = g->config.scope(m);
    for (const auto& [k, v] : settings.values()) n *= std::max<size_t>(1, split_list(v).size());
    variants += n;
  }
  g->cells = static_cast<int64_t>(g->datasets.size() * g->masks.size()) * variants * g->seeds;
  return true;
}

/// Images of `dataset` as the run counted them: the dataset opened with its stored settings,
/// else its `count` setting, else the most image indices stored for it (with a note).
int64_t images_of(const ResultSet& rs, const Grid& g, const std::string& dataset,
                  std::vector<std::string>* notes) {
  const Options settings = g.config.scope(dataset);
  std::string why;
  try {
    if (Registry<Dataset>::global().contains(dataset))
      return Registry<Dataset>::global().at(dataset).factory(settings)->size();
    why = "not a registered dataset";
  } catch (const std::exception& e) {
    why = e.what();
  }
  const int64_t count = int_or(settings, "count", -1);
  if (count > 0) {
    notes->push_back("dataset " + dataset + " not opened here (" + why +
                     "): " + std::to_string(count) + " images from its count setting");
    return count;
  }
  std::set<int64_t> seen;
  for (const auto& s : rs.samples) {
    if (rs.cells.at(s.cell_id).dataset == dataset) seen.insert(s.image_index);
  }
  const int64_t n = seen.empty() ? 0 : *seen.rbegin() + 1;
  notes->push_back("dataset " + dataset + " not opened here (" + why + "): " + std::to_string(n) +
                   " images counted from the stored samples (a lower bound)");
  return n;
}

std::string cell_label(const CellRecord& c) {
  return c.method + (c.axes.empty() ? "" : " [" + c.axes + "]") + " / " + c.mask + " / seed " +
         std::to_string(c.seed);
}

/// Shards i of n that no run and no file of the result set covers ("results.shard-1-of-3...").
std::vector<std::string> missing_shards(const ResultSet& rs) {
  std::map<int64_t, std::set<int64_t>> seen;  // n -> indices
  for (const auto& r : rs.runs) {
    if (r.shard.empty()) return {};  // an unsharded run covers the whole grid
    const auto slash = r.shard.find('/');
    if (slash == std::string::npos) continue;
    seen[int_or(Options{{"n", r.shard.substr(slash + 1)}}, "n", 0)].insert(
        int_or(Options{{"i", r.shard.substr(0, slash)}}, "i", -1));
  }
  for (const auto& src : rs.sources) {
    long long i = 0, n = 0;
    const std::string name = fs::path(src).filename().string();
    if (std::sscanf(name.c_str(), "results.shard-%lld-of-%lld.sqlite", &i, &n) == 2)
      seen[n].insert(i);
  }
  std::vector<std::string> out;
  for (const auto& [n, present] : seen) {
    for (int64_t i = 0; i < n && n < 100000; ++i) {
      if (present.count(i)) continue;
      const std::string s = std::to_string(i), of = std::to_string(n);
      out.push_back("results.shard-" + s + "-of-" + of + ".sqlite (shard " + s + "/" + of + ")");
    }
  }
  return out;
}

/// ok samples of cells whose grid has metrics, with no score or a NaN one.
int64_t unscored_samples(const ResultSet& rs, const std::map<std::string, Grid>& grids) {
  const bool metrics = std::any_of(grids.begin(), grids.end(),
                                   [](const auto& g) { return !g.second.metrics.empty(); });
  if (!metrics) return 0;
  int64_t n = 0;
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const bool nan = std::any_of(s.scores.begin(), s.scores.end(),
                                 [](const ScoreRecord& sc) { return std::isnan(sc.value); });
    n += s.scores.empty() || nan;
  }
  return n;
}

/// The stored metric names a configured one stands for: itself when stored, else the stored
/// names extending it (lpips: lpips_alex_v0.1), else itself (never scored).
std::vector<std::string> stored_names(const std::string& configured,
                                      const std::set<std::string>& stored) {
  if (stored.count(configured)) return {configured};
  std::vector<std::string> out;
  for (const auto& s : stored) {
    if (s.rfind(configured, 0) == 0) out.push_back(s);
  }
  if (out.empty()) out.push_back(configured);
  return out;
}

/// Cells some of whose ok samples lack a score (or hold NaN) of a metric of their grid, short of
/// the promise: "copaint / half / seed 0: ssim 1 of 3 samples".
std::vector<std::string> short_metrics(const ResultSet& rs, const Completeness& c,
                                       const std::map<int64_t, const Grid*>& grid_of) {
  std::set<std::string> stored;
  std::map<std::pair<int64_t, std::string>, int64_t> scored;  // (cell, metric) -> ok samples
  for (const auto& s : rs.samples) {
    for (const auto& sc : s.scores) {
      stored.insert(sc.metric);
      if (s.status == "ok" && !std::isnan(sc.value)) ++scored[{s.cell_id, sc.metric}];
    }
  }
  std::set<std::pair<int64_t, std::string>> set_scored;
  for (const auto& s : rs.set_scores) {
    // fid on the formula stand-in weights is stored as fid_standin (metrics/fid.h).
    const std::string suffix = "_standin";
    const bool standin =
        s.metric.size() > suffix.size() &&
        s.metric.compare(s.metric.size() - suffix.size(), suffix.size(), suffix) == 0;
    set_scored.insert(
        {s.cell_id, standin ? s.metric.substr(0, s.metric.size() - suffix.size()) : s.metric});
  }
  std::vector<std::string> out;
  for (const auto& [id, grid] : grid_of) {
    const int64_t ok = c.ok.count(id) ? c.ok.at(id) : 0;
    const int64_t promised = c.promised.at(id).samples;
    for (const auto& m : grid->set_metrics) {  // scored once the cell is complete
      if (ok >= promised && !set_scored.count({id, m}))
        out.push_back(
            cell_label(rs.cells.at(id)) + ": " + m +
            " not scored (cell complete: `copaint merge` or a rerun with its weights scores it)");
    }
    for (const auto& configured : grid->metrics) {
      for (const auto& m : stored_names(configured, stored)) {
        const int64_t n = scored.count({id, m}) ? scored.at({id, m}) : 0;
        if (n < ok && n < promised) {
          out.push_back(cell_label(rs.cells.at(id)) + ": " + m + " " + std::to_string(n) + " of " +
                        std::to_string(promised) + " samples");
        }
      }
    }
  }
  return out;
}

/// " N <what>: a; b; ... (10 at most) ... K more." for a non-empty list of cell labels.
void list_cells(std::ostream& os, const std::vector<std::string>& cells, const char* what) {
  if (cells.empty()) return;
  os << " " << cells.size() << " " << what << ": ";
  for (size_t i = 0; i < cells.size() && i < 10; ++i) os << (i ? "; " : "") << cells[i];
  if (cells.size() > 10) os << "; ... " << cells.size() - 10 << " more";
  os << ".";
}

}  // namespace

std::string Completeness::summary() const {
  if (!incomplete()) return "";
  std::ostringstream os;
  os << "Incomplete results:";
  list_cells(os, short_cells,
             "cell(s) hold fewer ok samples than the grid promises (tables mark them "
             "[ok/promised])");
  list_cells(os, extra_cells,
             "cell(s) hold more ok samples than the grid now promises (images removed from the "
             "dataset, or its count lowered, since they ran; the tables still include them: "
             "report a fresh run's folder to leave them out)");
  list_cells(os, short_metrics,
             "cell(s) have ok samples without a score of a metric of their grid (a metric added "
             "since: rerun `copaint run` to score them)");
  if (missing_cells > 0) {
    os << " " << missing_cells << " of the grid's " << grid_cells
       << " cells have no stored sample (not in the tables).";
  }
  if (unscored > 0) {
    os << " " << unscored
       << " ok sample(s) have no score or a NaN score (a metric failed, or NaN weights).";
  }
  if (!missing_shards.empty()) {
    os << " Missing shards: ";
    for (size_t i = 0; i < missing_shards.size(); ++i) os << (i ? ", " : "") << missing_shards[i];
    os << ".";
  }
  return os.str();
}

Completeness check_completeness(const ResultSet& rs) {
  Completeness out;
  for (const auto& s : rs.samples) {
    if (s.status == "ok") ++out.ok[s.cell_id];
  }
  // The latest run's grid wins for the cells it covers (runs in the order they started).
  std::vector<const RunRecord*> runs;
  for (const auto& r : rs.runs) runs.push_back(&r);
  std::stable_sort(runs.begin(), runs.end(),
                   [](const RunRecord* a, const RunRecord* b) { return a->started > b->started; });
  std::map<std::string, Grid> grids;                              // by config text
  std::map<std::pair<std::string, std::string>, int64_t> images;  // (config, dataset)
  const Grid* latest = nullptr;
  std::map<int64_t, const Grid*> grid_of;  // cell -> the grid that promised it
  for (const RunRecord* r : runs) {
    if (grids.count(r->config)) continue;
    Grid g;
    const auto is_set = [&](const std::string& m) { return is_set_metric(rs, m); };
    if (!parse_grid(r->config, is_set, &g)) continue;
    const Grid& kept = grids.emplace(r->config, std::move(g)).first->second;
    if (!latest) latest = &kept;
  }
  for (const auto& c : rs.cells) {
    for (const RunRecord* r : runs) {
      auto it = grids.find(r->config);
      if (it == grids.end()) continue;
      const Grid& g = it->second;
      if (!contains(g.datasets, c.dataset) || !contains(g.methods, c.method) ||
          !contains(g.masks, c.mask) || !g.seed_values.count(c.seed))
        continue;
      const auto key = std::make_pair(r->config, c.dataset);
      if (!images.count(key)) images[key] = images_of(rs, g, c.dataset, &out.notes);
      out.promised[c.id] = {images[key] * g.samples, g.seeds};
      grid_of[c.id] = &g;
      break;
    }
  }
  for (const auto& [id, p] : out.promised) {
    const int64_t ok = out.ok.count(id) ? out.ok.at(id) : 0;
    if (ok < p.samples) {
      out.short_cells.push_back(cell_label(rs.cells.at(id)) + ": " + std::to_string(ok) + " of " +
                                std::to_string(p.samples) + " samples");
    } else if (ok > p.samples) {
      out.extra_cells.push_back(cell_label(rs.cells.at(id)) + ": " + std::to_string(ok) +
                                " stored, " + std::to_string(p.samples) + " promised");
    }
  }
  if (latest) {
    int64_t present = 0;
    for (const auto& c : rs.cells) {
      present += contains(latest->datasets, c.dataset) && contains(latest->methods, c.method) &&
                 contains(latest->masks, c.mask) && latest->seed_values.count(c.seed);
    }
    out.grid_cells = latest->cells;
    out.missing_cells = std::max<int64_t>(0, latest->cells - present);
  }
  out.short_metrics = short_metrics(rs, out, grid_of);
  out.missing_shards = missing_shards(rs);
  out.unscored = unscored_samples(rs, grids);
  return out;
}

}  // namespace copaint
