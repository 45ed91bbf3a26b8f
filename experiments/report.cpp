// Reports: loading results, comparison/ablation/timing tables in markdown, CSV and LaTeX, and
// PNG exports (one sample, or a labelled grid drawn with OpenCV).
#include "experiments/report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <tuple>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "experiments/display_names.h"
#include "experiments/image_io.h"
#include "experiments/results_h5.h"
#include "framework/error.h"
#include "metrics/aggregate.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

std::map<std::string, std::string> parse_settings(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return out;
}

std::string fmt(double v, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

/// One cell of a table: its markdown text, its LaTeX text (the mean, and what follows it) and
/// the value that ranks it (NaN: not ranked).
struct Cell {
  std::string md;
  std::string tex_main, tex_rest;
  double value = NAN;
  Cell() = default;
  Cell(std::string text)  // NOLINT: a plain text cell
      : md(text), tex_main(latex_escape(text)) {}
  Cell(const char* text) : Cell(std::string(text)) {}  // NOLINT
};

/// A table before rendering.
struct Table {
  std::string title;                    ///< markdown heading
  std::string caption;                  ///< LaTeX caption (already LaTeX)
  std::string label;                    ///< LaTeX label
  bool wide = false;                    ///< LaTeX table* (a page wide) instead of table (a column)
  std::vector<std::string> header;      ///< markdown
  std::vector<std::string> header_tex;  ///< LaTeX (defaults to the escaped markdown header)
  /// LaTeX column groups over the columns after the first: (text, span).
  std::vector<std::pair<std::string, int>> groups;
  /// Per column: 1 rank higher first, 0 lower first, -1 not ranked.
  std::vector<int> rank;
  std::vector<std::vector<Cell>> rows;
};

/// Marks the best (bold) and, among three or more values, the second best (underlined) value of
/// every ranked column; ties share.
void mark_best(Table& t) {
  for (size_t c = 0; c < t.rank.size(); ++c) {
    if (t.rank[c] < 0) continue;
    std::vector<double> values;
    for (const auto& r : t.rows) {
      if (c < r.size() && std::isfinite(r[c].value)) values.push_back(r[c].value);
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    if (t.rank[c] == 1) std::reverse(values.begin(), values.end());
    if (values.size() < 2) continue;  // one value: nothing to compare
    for (auto& r : t.rows) {
      if (c >= r.size() || !std::isfinite(r[c].value)) continue;
      if (r[c].value == values[0]) {
        r[c].tex_main = "\\textbf{" + r[c].tex_main + "}";
      } else if (r[c].value == values[1] && values.size() > 2) {  // of two, only the best
        r[c].tex_main = "\\underline{" + r[c].tex_main + "}";
      }
    }
  }
}

std::string latex_label(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == ':' || c == '.'
               ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
               : '-';
  }
  return out;
}

void render(Table t, const std::string& format, std::ostream& out) {
  if (format == "latex") {
    mark_best(t);
    const size_t cols = t.header.size();
    const char* env = t.wide ? "table*" : "table";
    out << "% " << t.title << "\n\\begin{" << env << "}[t]\n\\centering\n\\caption{"
        << (t.caption.empty() ? latex_escape(t.title) : t.caption) << "}\n";
    if (!t.label.empty()) out << "\\label{" << t.label << "}\n";
    // Shrunk to the column (table) or page (table*) width when wider, never enlarged.
    out << "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n"
        << "\\begin{tabular}{l";
    for (size_t i = 1; i < cols; ++i) out << "r";
    out << "}\n\\toprule\n";
    if (!t.groups.empty()) {
      int at = 2;
      std::string rules;
      for (const auto& [text, span] : t.groups) {
        out << " & \\multicolumn{" << span << "}{c}{" << text << "}";
        rules += "\\cmidrule(lr){" + std::to_string(at) + "-" + std::to_string(at + span - 1) + "}";
        at += span;
      }
      out << " \\\\\n" << rules << "\n";
    }
    for (size_t i = 0; i < cols; ++i) {
      out << (i ? " & " : "")
          << (i < t.header_tex.size() ? t.header_tex[i] : latex_escape(t.header[i]));
    }
    out << " \\\\\n\\midrule\n";
    for (const auto& r : t.rows) {
      for (size_t i = 0; i < r.size(); ++i)
        out << (i ? " & " : "") << r[i].tex_main << r[i].tex_rest;
      out << " \\\\\n";
    }
    out << "\\bottomrule\n\\end{tabular}}\n\\end{" << env << "}\n\n";
    return;
  }
  out << "### " << t.title << "\n\n|";
  for (const auto& h : t.header) out << " " << h << " |";
  out << "\n|";
  for (size_t i = 0; i < t.header.size(); ++i) out << (i == 0 ? " --- |" : " ---: |");
  out << "\n";
  for (const auto& r : t.rows) {
    out << "|";
    for (const auto& c : r) out << " " << c.md << " |";
    out << "\n";
  }
  out << "\n";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// Per (variant, mask) of one section: the scores of each metric and the costs.
struct Stats {
  std::map<std::string, std::vector<double>> values;   ///< metric -> scores
  std::map<std::string, std::vector<int64_t>> images;  ///< metric -> image index per score
  std::map<std::string, bool> higher;                  ///< metric -> direction
  std::vector<double> seconds, forwards, backwards;
  int64_t peak = 0;
  int64_t ok = 0, errors = 0;
  std::set<int64_t> image_set;
};

struct Summary {
  int64_t samples = 0, images = 0, errors = 0;
  double mean = NAN, std = NAN, ci95 = NAN, best = NAN;
  int64_t per_image = 0;  ///< the most samples of one image (best-of-n is shown when > 1)
};

Summary summarise(const Stats& s, const std::string& metric) {
  Summary out;
  out.errors = s.errors;
  auto it = s.values.find(metric);
  if (it == s.values.end() || it->second.empty()) return out;
  const Aggregate a = aggregate(it->second);
  out.samples = a.count;
  out.mean = a.mean;
  out.std = a.std;
  out.ci95 = a.ci95;
  const auto& ids = s.images.at(metric);
  std::map<int64_t, int64_t> per_image;
  for (int64_t i : ids) out.per_image = std::max(out.per_image, ++per_image[i]);
  out.images = static_cast<int64_t>(per_image.size());
  out.best = best_mean(it->second, ids, s.higher.at(metric));
  return out;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

/// Every metric asked for must select a stored one (UsageError listing the stored names).
void check_metrics_exist(const std::vector<std::string>& wanted,
                         const std::vector<std::string>& stored) {
  for (const auto& w : wanted) {
    const bool any = std::any_of(stored.begin(), stored.end(), [&](const std::string& m) {
      return metric_selected(m, {w}, stored);
    });
    if (any) continue;
    std::string names;
    for (const auto& m : stored) names += (names.empty() ? "" : ", ") + m;
    throw UsageError("report: unknown metric '" + w +
                     "'; stored: " + (names.empty() ? std::string("(none)") : names));
  }
}

}  // namespace

ResultSet load_results(const std::vector<std::string>& dbs) {
  ResultSet rs;
  std::map<std::string, int64_t> cell_at;
  std::map<std::tuple<int64_t, int64_t, int64_t>, size_t> sample_at;
  std::set<std::string> run_keys;
  for (const auto& path : dbs) {
    ResultsDb db(path, false);
    rs.sources.push_back(path);
    for (const auto& r : db.runs()) {  // a merged file and its shards hold each run once
      if (run_keys.insert(run_identity(r)).second) rs.runs.push_back(r);
    }
    std::map<int64_t, int64_t> cell_map;
    for (auto c : db.cells()) {
      auto it = cell_at.find(c.key);
      if (it == cell_at.end()) {
        const int64_t id = static_cast<int64_t>(rs.cells.size());
        cell_at[c.key] = id;
        cell_map[c.id] = id;
        c.id = id;
        rs.cells.push_back(std::move(c));
      } else {
        cell_map[c.id] = it->second;
      }
    }
    const fs::path dir = fs::path(path).parent_path();
    for (auto s : db.samples()) {
      s.cell_id = cell_map.at(s.cell_id);
      if (!s.h5_file.empty()) s.h5_file = (dir / s.h5_file).string();
      const auto key = std::make_tuple(s.cell_id, s.image_index, s.sample_index);
      auto it = sample_at.find(key);
      if (it == sample_at.end()) {
        sample_at[key] = rs.samples.size();
        rs.samples.push_back(std::move(s));
      } else if (rs.samples[it->second].status != "ok" && s.status == "ok") {
        rs.samples[it->second] = std::move(s);
      }
    }
  }
  std::stable_sort(rs.cells.begin(), rs.cells.end(), [](const CellRecord& a, const CellRecord& b) {
    return a.position < b.position;
  });
  // Re-index after sorting.
  std::map<int64_t, int64_t> remap;
  for (size_t i = 0; i < rs.cells.size(); ++i) {
    remap[rs.cells[i].id] = static_cast<int64_t>(i);
    rs.cells[i].id = static_cast<int64_t>(i);
  }
  for (auto& s : rs.samples) s.cell_id = remap.at(s.cell_id);
  return rs;
}

std::vector<Variant> result_variants(const ResultSet& results) {
  std::vector<Variant> out;
  std::map<std::string, std::vector<std::map<std::string, std::string>>> settings_of;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& c : results.cells) {
    if (!seen.insert({c.method, c.settings_hash}).second) continue;
    Variant v;
    v.method = c.method;
    v.settings_hash = c.settings_hash;
    out.push_back(v);
    settings_of[c.method].push_back(parse_settings(c.settings));
  }
  std::map<std::string, size_t> next;
  for (auto& v : out) {
    const auto& all = settings_of[v.method];
    const auto& mine = all[next[v.method]++];
    if (all.size() > 1) {
      for (const auto& [k, val] : mine) {
        for (const auto& other : all) {
          auto it = other.find(k);
          if (it == other.end() || it->second != val) {
            v.varying[k] = val;
            break;
          }
        }
      }
    }
    v.label = v.method;
    if (!v.varying.empty()) {
      std::string s;
      for (const auto& [k, val] : v.varying) s += (s.empty() ? "" : ", ") + k + "=" + val;
      v.label += " (" + s + ")";
    }
  }
  return out;
}

ResultLayout result_layout(const ResultSet& rs) {
  ResultLayout out;
  out.variants = result_variants(rs);
  for (size_t i = 0; i < out.variants.size(); ++i)
    out.variant_of[{out.variants[i].method, out.variants[i].settings_hash}] = i;
  // Model labels: the name, plus the model settings that differ between cells of that name.
  std::map<std::string, std::map<std::string, std::map<std::string, std::string>>> settings_of;
  for (const auto& c : rs.cells)
    settings_of[c.model][c.model_settings] = parse_settings(c.model_settings);
  const auto model_label = [&](const CellRecord& c) {
    const auto& all = settings_of.at(c.model);
    if (all.size() < 2) return c.model;
    const auto& mine = all.at(c.model_settings);
    std::string varying;
    for (const auto& [k, val] : mine) {
      const bool differs = std::any_of(all.begin(), all.end(), [&](const auto& other) {
        auto it = other.second.find(k);
        return it == other.second.end() || it->second != val;
      });
      if (differs) varying += (varying.empty() ? "" : ", ") + k + "=" + val;
    }
    return varying.empty() ? c.model : c.model + " (" + varying + ")";
  };
  for (const auto& c : rs.cells) {
    const auto key = std::make_tuple(c.dataset, c.model, c.model_settings);
    if (!out.section_index.count(key)) {
      const auto section = std::make_pair(c.dataset, model_label(c));
      auto it = std::find(out.sections.begin(), out.sections.end(), section);
      if (it == out.sections.end()) it = out.sections.insert(out.sections.end(), section);
      out.section_index[key] = static_cast<size_t>(it - out.sections.begin());
    }
    if (std::find(out.masks.begin(), out.masks.end(), c.mask) == out.masks.end())
      out.masks.push_back(c.mask);
  }
  return out;
}

void write_report(const ResultSet& rs, const ReportOptions& o, std::ostream& out) {
  write_report(rs, check_completeness(rs), o, out);
}

void write_report(const ResultSet& rs, const Completeness& done, const ReportOptions& o,
                  std::ostream& out) {
  if (o.format != "markdown" && o.format != "csv" && o.format != "latex") {
    throw UsageError("report: unknown format '" + o.format + "'; valid: markdown, csv, latex");
  }
  std::string pivot;
  for (char c : o.pivot) {
    if (!std::isspace(static_cast<unsigned char>(c)))
      pivot += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (pivot != "methodxmask" && pivot != "maskxmethod") {
    throw UsageError("report: unknown pivot '" + o.pivot +
                     "'; valid: 'method x mask' (rows methods), 'mask x method' (rows masks)");
  }
  if (o.layout != "metric" && o.layout != "paper") {
    throw UsageError("report: unknown layout '" + o.layout +
                     "'; valid: metric (a table per metric, a column wide), paper (masks as "
                     "column groups, metrics as sub-columns, a page wide)");
  }
  const std::string spread = o.std && o.spread == "none" ? "std" : o.spread;
  if (spread != "none" && spread != "std" && spread != "ci95") {
    throw UsageError("report: unknown spread '" + o.spread + "'; valid: none, std, ci95");
  }
  const bool masks_as_rows = pivot == "maskxmethod";
  const bool latex = o.format == "latex";
  const ResultLayout layout = result_layout(rs);
  const std::vector<Variant>& variants = layout.variants;
  const auto& variant_of = layout.variant_of;
  const auto& sections = layout.sections;
  const auto& masks = layout.masks;
  // Metrics in the experiment's order (its `metrics` key), then any others as they appear.
  std::vector<std::string> stored;
  for (const auto& s : rs.samples) {
    for (const auto& sc : s.scores) {
      if (std::find(stored.begin(), stored.end(), sc.metric) == stored.end())
        stored.push_back(sc.metric);
    }
  }
  std::vector<std::string> metrics;
  for (const auto& m : order_metrics(stored, configured_metrics(rs.runs))) {
    if (metric_selected(m, o.metrics, stored)) metrics.push_back(m);
  }
  check_metrics_exist(o.metrics, stored);
  std::map<std::string, bool> higher;

  // (section, variant, mask) -> stats; (section, variant) -> stats over masks.
  using Key = std::tuple<size_t, size_t, std::string>;
  std::map<Key, Stats> stats;
  for (const auto& s : rs.samples) {
    const CellRecord& c = rs.cells.at(s.cell_id);
    const size_t sec = layout.section_of(c);
    const size_t v = variant_of.at({c.method, c.settings_hash});
    for (const std::string& mask : {c.mask, std::string("\x01all")}) {
      Stats& st = stats[Key{sec, v, mask}];
      if (s.status != "ok") {
        ++st.errors;
        continue;
      }
      ++st.ok;
      st.seconds.push_back(s.seconds);
      st.forwards.push_back(static_cast<double>(s.forwards));
      st.backwards.push_back(static_cast<double>(s.backwards));
      st.peak = std::max(st.peak, s.peak_memory);
      st.image_set.insert(s.image_index);
      for (const auto& sc : s.scores) {
        st.values[sc.metric].push_back(sc.value);
        // Best-of-n pools an image's samples over seeds; masks differ per row, so key by image.
        st.images[sc.metric].push_back(s.image_index);
        st.higher[sc.metric] = sc.higher_is_better;
        higher[sc.metric] = sc.higher_is_better;
      }
    }
  }
  auto find_stats = [&](size_t sec, size_t v, const std::string& mask) -> const Stats* {
    auto it = stats.find(Key{sec, v, mask});
    return it == stats.end() ? nullptr : &it->second;
  };
  // Samples the grid promises per (section, variant, mask): a cell's promise times the seeds
  // pooled there (absent: unknown).
  std::map<Key, int64_t> promised;
  for (const auto& [id, p] : done.promised) {
    const CellRecord& c = rs.cells.at(id);
    const Key k{layout.section_of(c), variant_of.at({c.method, c.settings_hash}), c.mask};
    promised[k] = std::max(promised[k], p.samples * p.seeds);
  }
  // "[12/16]" when fewer ok samples are stored than promised, else "".
  auto short_marker = [&](const Stats* st, size_t sec, size_t v, const std::string& mask) {
    auto it = promised.find(Key{sec, v, mask});
    const int64_t ok = st ? st->ok : 0;
    if (it == promised.end() || ok >= it->second) return std::string();
    return " [" + std::to_string(ok) + "/" + std::to_string(it->second) + "]";
  };

  if (o.format == "csv") {
    out << "dataset,model,metric,higher_is_better,method,variant,settings,mask,samples,images,"
           "errors,mean,std,best_mean,seconds_per_sample,forwards_per_sample,"
           "backwards_per_sample,ci95,promised_samples\n";
    for (size_t sec = 0; sec < sections.size(); ++sec) {
      for (const auto& metric : metrics) {
        for (size_t v = 0; v < variants.size(); ++v) {
          for (const auto& mask : masks) {
            const Stats* st = find_stats(sec, v, mask);
            if (!st) continue;
            const Summary sm = summarise(*st, metric);
            std::string settings;
            for (const auto& [k, val] : variants[v].varying)
              settings += (settings.empty() ? "" : ";") + k + "=" + val;
            out << csv_field(sections[sec].first) << "," << csv_field(sections[sec].second) << ","
                << csv_field(metric) << "," << (higher[metric] ? 1 : 0) << ","
                << csv_field(variants[v].method) << "," << csv_field(variants[v].label) << ","
                << csv_field(settings) << "," << csv_field(mask) << "," << sm.samples << ","
                << sm.images << "," << st->errors << "," << fmt(sm.mean, 10) << ","
                << fmt(sm.std, 10) << "," << fmt(sm.best, 10) << "," << fmt(mean_of(st->seconds), 6)
                << "," << fmt(mean_of(st->forwards), 2) << "," << fmt(mean_of(st->backwards), 2)
                << "," << fmt(sm.ci95, 10) << ",";
            auto pr = promised.find(Key{sec, v, mask});
            if (pr != promised.end()) out << pr->second;
            out << "\n";
          }
        }
      }
    }
    return;
  }

  const int p = o.precision;
  // Whether any cell has several samples of one image (then best-of-n is shown).
  bool several = false;
  for (const auto& [key, st] : stats) {
    if (std::get<2>(key) == "\x01all") continue;  // pools masks: an image recurs there
    for (const auto& m : metrics) {
      if (summarise(st, m).per_image > 1) several = true;
    }
  }
  auto cell = [&](const Stats* st, const std::string& metric) -> Cell {
    if (!st) return Cell("-");
    const Summary sm = summarise(*st, metric);
    if (sm.samples == 0) return Cell(st->errors ? "error" : "-");
    Cell c;
    // Ranked as printed, so values that print equal are marked equal.
    const double scale = std::pow(10.0, p);
    c.value = std::round(sm.mean * scale) / scale;
    c.md = fmt(sm.mean, p);
    c.tex_main = fmt(sm.mean, p);
    const double sp = spread == "std" ? sm.std : sm.ci95;
    if (spread != "none") {
      c.md += " ± " + fmt(sp, p);
      c.tex_rest += " {\\scriptsize $\\pm$ " + fmt(sp, p) + "}";
    }
    if (sm.per_image > 1) {
      c.md += " (" + fmt(sm.best, p) + ")";
      c.tex_rest += " (" + fmt(sm.best, p) + ")";
    }
    if (st->errors) {
      c.md += " [" + std::to_string(st->errors) + " err]";
      c.tex_rest += " [" + std::to_string(st->errors) + " err]";
    }
    return c;
  };
  // A cell with its completeness marker (see short_marker).
  auto marked = [&](size_t sec, size_t v, const std::string& mask, const std::string& metric) {
    const Stats* st = find_stats(sec, v, mask);
    Cell c = cell(st, metric);
    const std::string m = short_marker(st, sec, v, mask);
    c.md += m;
    c.tex_rest += m;
    return c;
  };
  const std::string spread_md = spread == "std"    ? ", ± the standard deviation over samples"
                                : spread == "ci95" ? ", ± the half-width of the 95% confidence "
                                                     "interval of the mean (Student t)"
                                                   : "";
  const std::string best_md =
      several ? " and, in parentheses, best-of-n: each image's best sample, averaged over images"
              : "";
  auto caption_tail = [&](size_t sec) {
    std::string s = "Mean over samples";
    if (spread == "std") s += " $\\pm$ standard deviation";
    if (spread == "ci95") s += " $\\pm$ 95\\% confidence interval of the mean";
    if (several) s += "; in parentheses best of $n$ (each image's best sample)";
    s += ". Best in bold, second underlined.";
    return s;
  };
  auto where_tex = [&](size_t sec) {
    return latex_escape(dataset_display(sections[sec].first)) + " (model " +
           latex_escape(sections[sec].second) + ")";
  };
  auto variant_tex = [&](const Variant& v) {
    std::string s = method_display(v.method);
    if (!v.varying.empty()) {
      std::string k;
      for (const auto& [key, val] : v.varying) k += (k.empty() ? "" : ", ") + key + "=" + val;
      s += " (" + k + ")";
    }
    return latex_escape(s);
  };
  auto label_cell = [&](const std::string& md, const std::string& tex) {
    Cell c(md);
    c.tex_main = tex;
    return c;
  };

  if (o.format == "markdown") {
    std::set<std::string> names, hashes;
    for (const auto& r : rs.runs) {
      names.insert(r.name);
      hashes.insert(r.config_hash);
    }
    std::string n;
    for (const auto& x : names) n += (n.empty() ? "" : ", ") + x;
    out << "# Results: " << (n.empty() ? std::string("?") : n) << "\n\n"
        << rs.runs.size() << " run(s) from " << rs.sources.size() << " database(s), "
        << rs.samples.size() << " samples, " << rs.cells.size() << " cells. "
        << "Cells: mean over samples (seeds pooled)" << spread_md << best_md << ".\n\n";
    if (done.incomplete()) {
      out << "**" << done.summary() << "**\n\n";
      for (const auto& n : done.notes) out << "Note: " << n << ".\n\n";
    }
    // Failed samples (a method error, or an image that could not be read and was skipped):
    // counted, with their distinct messages, most frequent first.
    std::map<std::string, int64_t> errors;
    int64_t failed = 0;
    for (const auto& s : rs.samples) {
      if (s.status == "ok") continue;
      ++failed;
      std::string e = s.error.empty() ? s.status : s.error;
      if (e.size() > 200) e = e.substr(0, 197) + "...";
      ++errors[e];
    }
    if (failed > 0) {
      std::vector<std::pair<int64_t, std::string>> by_count;
      for (const auto& [e, n] : errors) by_count.emplace_back(-n, e);
      std::sort(by_count.begin(), by_count.end());
      out << failed << " failed sample(s) (status error, left out of the tables; `[n err]` "
          << "marks their cells):\n\n";
      for (size_t i = 0; i < by_count.size() && i < 10; ++i)
        out << "- " << -by_count[i].first << " x " << by_count[i].second << "\n";
      if (by_count.size() > 10) out << "- ... " << by_count.size() - 10 << " other messages\n";
      out << "\n";
    }
  } else if (o.standalone) {
    if (done.incomplete()) out << "% " << done.summary() << "\n";
    out << "% copaint report: a complete document (pdflatex FILE.tex)\n"
        << "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        << "\\begin{document}\n\n";
  } else {
    if (done.incomplete()) out << "% " << done.summary() << "\n";
    out << "% copaint report. Preamble: \\usepackage{booktabs} (rules) and "
           "\\usepackage{graphicx} (\\resizebox); or `copaint report --format latex "
           "--standalone` for a complete document.\n\n";
  }

  for (size_t sec = 0; sec < sections.size(); ++sec) {
    const std::string where = "dataset " + sections[sec].first + ", model " + sections[sec].second;
    if (o.layout == "paper") {
      // The paper's Table 1: masks as column groups, metrics as sub-columns, methods as rows.
      Table t;
      t.title = "methods x masks, " + where;
      t.caption = where_tex(sec) + ". " + caption_tail(sec);
      t.label = "tab:" + latex_label(sections[sec].first + "-" + sections[sec].second);
      t.wide = true;
      t.header = {"method"};
      t.header_tex = {"Method"};
      t.rank = {-1};
      std::vector<std::string> used_masks;
      for (const auto& mask : masks) {
        bool any = false;
        for (size_t v = 0; v < variants.size(); ++v) any = any || find_stats(sec, v, mask);
        if (any) used_masks.push_back(mask);
      }
      for (const auto& mask : used_masks) {
        t.groups.emplace_back(latex_escape(mask_display(mask)), static_cast<int>(metrics.size()));
        for (const auto& metric : metrics) {
          t.header.push_back(mask + ": " + metric);
          t.header_tex.push_back(metric_latex(metric, higher[metric]));
          t.rank.push_back(higher[metric] ? 1 : 0);
        }
      }
      for (size_t v = 0; v < variants.size(); ++v) {
        if (!find_stats(sec, v, "\x01all")) continue;
        std::vector<Cell> row = {label_cell(variants[v].label, variant_tex(variants[v]))};
        for (const auto& mask : used_masks) {
          for (const auto& metric : metrics) row.push_back(marked(sec, v, mask, metric));
        }
        t.rows.push_back(std::move(row));
      }
      if (!t.rows.empty() && !metrics.empty()) render(t, o.format, out);
    } else {
      for (const auto& metric : metrics) {
        Table t;
        t.title = metric + " (" + (higher[metric] ? "higher" : "lower") + " is better), " + where;
        t.caption = metric_latex(metric, higher[metric]) + " on " + where_tex(sec) + ". " +
                    caption_tail(sec);
        t.label =
            "tab:" + latex_label(sections[sec].first + "-" + sections[sec].second + "-" + metric);
        const int dir = higher[metric] ? 1 : 0;
        if (masks_as_rows) {
          // Columns: the variants of this section; rows: masks.
          std::vector<size_t> cols;
          for (size_t v = 0; v < variants.size(); ++v) {
            if (find_stats(sec, v, "\x01all")) cols.push_back(v);
          }
          t.header = {"mask"};
          t.header_tex = {"Mask"};
          t.rank = {-1};
          for (size_t v : cols) {
            t.header.push_back(variants[v].label);
            t.header_tex.push_back(variant_tex(variants[v]));
          }
          for (const auto& mask : masks) {
            std::vector<Cell> row = {label_cell(mask, latex_escape(mask_display(mask)))};
            bool any = false;
            for (size_t v : cols) {
              const Stats* st = find_stats(sec, v, mask);
              any = any || st;
              row.push_back(marked(sec, v, mask, metric));
            }
            if (any) t.rows.push_back(std::move(row));
          }
          // Best per row: rank the transposed way by ranking each row's cells.
          for (auto& r : t.rows) {
            // The row's cells as a column, to reuse mark_best.
            Table col;
            col.rank = {dir};
            for (size_t i = 1; i < r.size(); ++i) col.rows.push_back({r[i]});
            if (latex) mark_best(col);
            for (size_t i = 1; i < r.size(); ++i) {
              r[i] = col.rows[i - 1][0];
              r[i].value = NAN;  // already marked
            }
          }
        } else {
          t.header = {"method"};
          t.header_tex = {"Method"};
          t.rank = {-1};
          for (const auto& m : masks) {
            t.header.push_back(m);
            t.header_tex.push_back(latex_escape(mask_display(m)));
            t.rank.push_back(dir);
          }
          for (size_t v = 0; v < variants.size(); ++v) {
            std::vector<Cell> row = {label_cell(variants[v].label, variant_tex(variants[v]))};
            bool any = false;
            for (const auto& mask : masks) {
              const Stats* st = find_stats(sec, v, mask);
              any = any || st;
              row.push_back(marked(sec, v, mask, metric));
            }
            if (any) t.rows.push_back(std::move(row));
          }
        }
        if (!t.rows.empty()) render(t, o.format, out);
      }
    }

    // Ablations: a method with several variants, rows its varying settings.
    std::vector<std::string> methods;
    for (const auto& v : variants) {
      if (!v.varying.empty() &&
          std::find(methods.begin(), methods.end(), v.method) == methods.end())
        methods.push_back(v.method);
    }
    for (const auto& method : methods) {
      std::set<std::string> keys;
      for (const auto& v : variants) {
        if (v.method == method)
          for (const auto& [k, val] : v.varying) keys.insert(k);
      }
      std::string over;
      for (const auto& k : keys) over += (over.empty() ? "" : " x ") + k;
      for (const auto& metric : metrics) {
        Table t;
        t.title = "ablation of " + method + " over " + over + ": " + metric + " (" +
                  (higher[metric] ? "higher" : "lower") + " is better), " + where;
        t.caption = "Ablation of " + latex_escape(method_display(method)) + " over " +
                    latex_escape(over) + ": " + metric_latex(metric, higher[metric]) + " on " +
                    where_tex(sec) + ". " + caption_tail(sec);
        t.label = "tab:" + latex_label(sections[sec].first + "-" + sections[sec].second + "-" +
                                       method + "-" + over + "-" + metric);
        for (const auto& k : keys) {
          t.header.push_back(k);
          t.rank.push_back(-1);
        }
        for (const auto& m : masks) {
          t.header.push_back(m);
          t.rank.push_back(higher[metric] ? 1 : 0);
        }
        t.header_tex = std::vector<std::string>();
        for (const auto& k : keys) t.header_tex.push_back(latex_escape(k));
        for (const auto& m : masks) t.header_tex.push_back(latex_escape(mask_display(m)));
        t.header_tex.push_back("s/sample");
        t.header_tex.push_back("forwards/sample");
        t.header.push_back("s/sample");
        t.header.push_back("forwards/sample");
        for (size_t v = 0; v < variants.size(); ++v) {
          if (variants[v].method != method) continue;
          const Stats* all = find_stats(sec, v, "\x01all");
          if (!all) continue;
          std::vector<Cell> row;
          for (const auto& k : keys) {
            auto it = variants[v].varying.find(k);
            // Absent: an option left out of stored settings at its default (keyed_at_default).
            row.push_back(it == variants[v].varying.end() ? "(default)" : it->second);
          }
          for (const auto& mask : masks) row.push_back(marked(sec, v, mask, metric));
          row.push_back(fmt(mean_of(all->seconds), 3));
          row.push_back(fmt(mean_of(all->forwards), 1));
          t.rows.push_back(std::move(row));
        }
        if (!t.rows.empty()) render(t, o.format, out);
      }
    }

    if (o.timing) {
      Table t;
      t.title = "timing per sample, " + where;
      t.caption = "Cost per sample on " + where_tex(sec) +
                  ": seconds, UNet forwards and backwards, peak device memory.";
      t.label = "tab:" + latex_label(sections[sec].first + "-" + sections[sec].second + "-timing");
      t.header = {"method", "samples", "errors", "seconds", "forwards", "backwards", "peak MiB"};
      t.header_tex = {"Method",   "samples",   "errors",  "seconds",
                      "forwards", "backwards", "peak MiB"};
      for (size_t v = 0; v < variants.size(); ++v) {
        const Stats* all = find_stats(sec, v, "\x01all");
        if (!all) continue;
        t.rows.push_back({label_cell(variants[v].label, variant_tex(variants[v])),
                          std::to_string(all->ok), std::to_string(all->errors),
                          fmt(mean_of(all->seconds), 3), fmt(mean_of(all->forwards), 1),
                          fmt(mean_of(all->backwards), 1),
                          fmt(static_cast<double>(all->peak) / (1024.0 * 1024.0), 1)});
      }
      render(t, o.format, out);
    }
  }
  if (latex && o.standalone) out << "\\end{document}\n";
}

void export_sample(const std::string& db_path, int64_t sample_id, const std::string& out_path) {
  ResultsDb db(db_path, false);
  const SampleRecord s = db.sample(sample_id);
  if (s.status != "ok") {
    throw InputError("sample " + std::to_string(sample_id) + " of '" + db_path + "' has status " +
                     s.status + (s.error.empty() ? "" : ": " + s.error));
  }
  const std::string h5 = (fs::path(db_path).parent_path() / s.h5_file).string();
  ResultsH5 file(h5, ResultsH5::Mode::kRead);
  write_image(out_path, file.read_image(s.sample_path));
}

namespace {

cv::Mat to_bgr(const at::Tensor& hwc_u8, int64_t tile) {
  at::Tensor t = hwc_u8.contiguous();
  const int h = static_cast<int>(t.size(0)), w = static_cast<int>(t.size(1));
  const int c = static_cast<int>(t.size(2));
  cv::Mat m(h, w, CV_8UC(c), t.data_ptr<uint8_t>());
  cv::Mat bgr;
  if (c == 1) {
    cv::cvtColor(m, bgr, cv::COLOR_GRAY2BGR);
  } else {
    cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  }
  cv::Mat out;
  cv::resize(bgr, out, cv::Size(static_cast<int>(tile), static_cast<int>(tile)), 0, 0,
             tile >= h ? cv::INTER_NEAREST : cv::INTER_AREA);
  return out;
}

/// Draws `text` centred in `box`, shrinking the font until it fits.
void put_label(cv::Mat& canvas, const std::string& text, const cv::Rect& box) {
  double scale = 0.45;
  int base = 0;
  cv::Size size;
  for (; scale > 0.2; scale -= 0.05) {
    size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base);
    if (size.width <= box.width - 4) break;
  }
  const cv::Point at(box.x + std::max(2, (box.width - size.width) / 2),
                     box.y + (box.height + size.height) / 2);
  cv::putText(canvas, text, at, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(0, 0, 0), 1,
              cv::LINE_AA);
}

}  // namespace

int64_t export_grid(const ResultSet& rs, const GridOptions& o, const std::string& out_path) {
  std::vector<Variant> variants = result_variants(rs);
  std::map<std::pair<std::string, std::string>, size_t> variant_of;
  std::vector<size_t> columns;
  for (size_t i = 0; i < variants.size(); ++i) {
    variant_of[{variants[i].method, variants[i].settings_hash}] = i;
    const bool wanted =
        o.methods.empty() ||
        std::find(o.methods.begin(), o.methods.end(), variants[i].method) != o.methods.end() ||
        std::find(o.methods.begin(), o.methods.end(), variants[i].label) != o.methods.end();
    if (wanted) columns.push_back(i);
  }
  if (columns.empty()) throw UsageError("export --grid: no stored method matches --methods");
  int64_t seed = o.seed;
  if (seed < 0 && !rs.cells.empty()) seed = rs.cells.front().seed;
  std::vector<std::string> masks;
  for (const auto& c : rs.cells) {
    const bool wanted =
        o.masks.empty() || std::find(o.masks.begin(), o.masks.end(), c.mask) != o.masks.end();
    if (wanted && std::find(masks.begin(), masks.end(), c.mask) == masks.end())
      masks.push_back(c.mask);
  }
  // (variant, mask, image) -> sample; (mask, image) -> a sample holding its reference and mask.
  std::map<std::tuple<size_t, std::string, int64_t>, const SampleRecord*> by_key;
  std::map<std::pair<std::string, int64_t>, const SampleRecord*> inputs;
  std::set<int64_t> stored_images;
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const CellRecord& c = rs.cells.at(s.cell_id);
    inputs.emplace(std::make_pair(c.mask, s.image_index), &s);
    stored_images.insert(s.image_index);
    if (c.seed != seed || s.sample_index != o.sample_index) continue;
    by_key[{variant_of.at({c.method, c.settings_hash}), c.mask, s.image_index}] = &s;
  }
  std::vector<int64_t> images = o.images;
  if (images.empty()) {
    for (int64_t i : stored_images) {
      if (images.size() < 4) images.push_back(i);
    }
  }
  if (images.empty() || masks.empty()) throw InputError("export --grid: no stored samples");

  std::map<std::string, std::unique_ptr<ResultsH5>> files;
  auto read = [&](const SampleRecord& s, const std::string& path) {
    auto& f = files[s.h5_file];
    if (!f) f = std::make_unique<ResultsH5>(s.h5_file, ResultsH5::Mode::kRead);
    return f->read_uint8(path);
  };
  int64_t tile = o.tile;
  if (tile <= 0) {
    const SampleRecord* any = inputs.begin()->second;
    tile = std::max<int64_t>(96, read(*any, any->reference_path).size(0));
  }
  const int label_w = 110, header_h = 28, gap = 4;
  const int t = static_cast<int>(tile);
  const int cols = static_cast<int>(2 + columns.size());
  const int rows = static_cast<int>(images.size() * masks.size());
  cv::Mat canvas(header_h + rows * (t + gap), label_w + cols * (t + gap), CV_8UC3,
                 cv::Scalar(255, 255, 255));
  std::vector<std::string> headers = {"reference", "input"};
  for (size_t v : columns) headers.push_back(variants[v].label);
  for (int c = 0; c < cols; ++c)
    put_label(canvas, headers[c], cv::Rect(label_w + c * (t + gap), 0, t, header_h));
  int64_t drawn = 0;
  int row = 0;
  for (int64_t image : images) {
    for (const auto& mask : masks) {
      const int y = header_h + row * (t + gap);
      auto in = inputs.find({mask, image});
      std::string id = std::to_string(image);
      if (in != inputs.end() && !in->second->image_id.empty()) id = in->second->image_id;
      put_label(canvas, "img " + id, cv::Rect(0, y + t / 2 - 16, label_w, 16));
      put_label(canvas, mask, cv::Rect(0, y + t / 2, label_w, 16));
      auto place = [&](int c, const cv::Mat& m) {
        m.copyTo(canvas(cv::Rect(label_w + c * (t + gap), y, t, t)));
        ++drawn;
      };
      const cv::Mat missing(t, t, CV_8UC3, cv::Scalar(64, 64, 64));
      if (in != inputs.end()) {
        const at::Tensor ref = read(*in->second, in->second->reference_path);
        const at::Tensor known = read(*in->second, in->second->mask_path).gt(127);
        const at::Tensor masked =
            at::where(known.expand_as(ref), ref, at::full_like(ref, 128)).contiguous();
        place(0, to_bgr(ref, tile));
        place(1, to_bgr(masked, tile));
      } else {
        place(0, missing);
        place(1, missing);
      }
      for (size_t k = 0; k < columns.size(); ++k) {
        auto it = by_key.find({columns[k], mask, image});
        place(static_cast<int>(2 + k),
              it == by_key.end() ? missing
                                 : to_bgr(read(*it->second, it->second->sample_path), tile));
      }
      ++row;
    }
  }
  write_image_file(out_path, canvas);  // atomic: never a truncated grid
  return drawn;
}

}  // namespace copaint
