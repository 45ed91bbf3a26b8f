// Figures: aggregation of stored samples per (variant, mask) with 95% confidence intervals, and
// gnuplot scripts (data + script per figure, PNG/PDF/SVG from one gnuplot run).
#include "experiments/plots.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "experiments/display_names.h"
#include "framework/error.h"
#include "metrics/aggregate.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

/// Okabe-Ito (its yellow, unreadable on white, replaced by wine #882255): distinguishable with the
/// common colour-vision deficiencies.
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                "#56B4E9", "#000000", "#882255", "#999999"};
constexpr int kColours = sizeof kPalette / sizeof kPalette[0];
/// gnuplot point types (circle, square, triangle up, diamond, triangle down, ...: filled).
const int kPoints[] = {7, 5, 9, 13, 11, 15, 1, 2, 3};
constexpr int kNumPoints = sizeof kPoints / sizeof kPoints[0];

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    out += keep ? c : '_';
  }
  return out;
}

bool parse_number(const std::string& s, double* v) {
  try {
    size_t used = 0;
    *v = std::stod(s, &used);
    return used == s.size() && std::isfinite(*v);
  } catch (const std::exception&) {
    return false;
  }
}

/// A gnuplot string literal (single quotes; '' is a quote).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string num(double v) {
  if (!std::isfinite(v)) return "?";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

/// The terminals: PNG at the pixel size, PDF and SVG at the same aspect.
std::string terminals(const std::string& stem, int width, int height, const std::string& plot) {
  std::ostringstream s;
  char pdf[64];
  std::snprintf(pdf, sizeof pdf, "%.2fin,%.2fin", width / 128.0, height / 128.0);
  s << "set terminal pngcairo size " << width << "," << height
    << " enhanced font 'DejaVu Sans,10' linewidth 1.2\n"
    << "set output " << quoted(stem + ".png") << "\n"
    << plot << "set terminal pdfcairo size " << pdf
    << " enhanced font 'DejaVu Sans,8' linewidth 1.2\n"
    << "set output " << quoted(stem + ".pdf") << "\nreplot\n"
    << "set terminal svg size " << width << "," << height
    << " enhanced font 'DejaVu Sans,10' linewidth 1.2 background '#ffffff'\n"
    << "set output " << quoted(stem + ".svg") << "\nreplot\nunset output\n";
  return s.str();
}

std::string common_header() {
  return "reset\nset encoding utf8\nset datafile separator '\\t'\nset datafile missing '?'\n"
         "set grid ytics lc rgb '#dddddd' lw 1 dt 1\nset border 3\nset tics nomirror out\n"
         "set key noenhanced\n";
}

/// Mean and 95% CI half-width of a list of scores.
struct Spread {
  std::vector<double> values;
  void add(double v) {
    if (std::isfinite(v)) values.push_back(v);
  }
  double mean() const { return values.empty() ? NAN : aggregate(values).mean; }
  double ci() const { return values.size() < 2 ? NAN : aggregate(values).ci95; }
};

}  // namespace

bool geometric_sweep(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  if (v.size() < 3 || v.front() <= 0 || v.back() / v.front() < 8) return false;
  // Coefficient of variation of the gaps, linear and in log.
  auto cv = [](const std::vector<double>& gaps) {
    double m = 0, s = 0;
    for (double g : gaps) m += g;
    m /= static_cast<double>(gaps.size());
    for (double g : gaps) s += (g - m) * (g - m);
    return std::sqrt(s / static_cast<double>(gaps.size())) / m;
  };
  std::vector<double> lin, lg;
  for (size_t i = 1; i < v.size(); ++i) {
    lin.push_back(v[i] - v[i - 1]);
    lg.push_back(std::log(v[i] / v[i - 1]));
  }
  return cv(lg) < cv(lin);
}

void write_line_plot_script(const LinePlot& p, int width, int height, const std::string& dir,
                            const std::string& stem) {
  {
    // One block per series (gnuplot `index`): x, mean, low, high.
    std::ofstream dat(fs::path(dir) / (stem + ".dat"));
    for (size_t k = 0; k < p.series.size(); ++k) {
      const auto& s = p.series[k];
      dat << "# " << s.label << "\n# x\tmean\tlow\thigh\n";
      for (size_t i = 0; i < s.points.size(); ++i) {
        const double lo = i < s.band.size() ? s.band[i].first : NAN;
        const double hi = i < s.band.size() ? s.band[i].second : NAN;
        dat << num(s.points[i].first) << "\t" << num(s.points[i].second) << "\t" << num(lo) << "\t"
            << num(hi) << "\n";
      }
      dat << "\n\n";
    }
    if (!dat) throw InputError("cannot write plot data '" + dir + "/" + stem + ".dat'");
  }
  std::ostringstream g;
  g << "# " << p.title << " (gnuplot " << stem << ".gp writes " << stem << ".png/.pdf/.svg)\n"
    << common_header() << "set title " << quoted(p.title) << " noenhanced\n"
    << "set xlabel " << quoted(p.x_label) << " noenhanced\n"
    << "set ylabel " << quoted(p.y_label) << " noenhanced\n"
    << "set key bmargin center horizontal spacing 1.1 width 1\nset offsets graph 0.04, graph 0.04, "
       "graph 0.06, graph 0.06\n";
  if (p.log_x) g << "set logscale x\n";
  if (!p.x_ticks.empty()) {
    g << "set xtics (";
    for (size_t i = 0; i < p.x_ticks.size(); ++i) {
      g << (i ? ", " : "")
        << quoted(i < p.x_tick_labels.size() ? p.x_tick_labels[i] : num(p.x_ticks[i])) << " "
        << num(p.x_ticks[i]);
    }
    g << ")\n";
  }
  std::ostringstream plot;
  plot << "plot ";
  bool first = true;
  const std::string data = quoted(stem + ".dat");
  for (size_t k = 0; k < p.series.size(); ++k) {
    const char* colour = kPalette[k % kColours];
    const bool band = !p.series[k].band.empty();
    if (band) {
      plot << (first ? "" : ", \\\n     ") << data << " index " << k
           << " using 1:3:4 with filledcurves lc rgb '" << colour
           << "' fs transparent solid 0.18 noborder notitle";
      first = false;
    }
    plot << (first ? "" : ", \\\n     ") << data << " index " << k
         << " using 1:2 with linespoints lc rgb '" << colour << "' lw 1.5 dt " << (k % 5) + 1
         << " pt " << kPoints[k % kNumPoints] << " ps 1.1 title " << quoted(p.series[k].label);
    first = false;
  }
  plot << "\n";
  g << terminals(stem, width, height, plot.str());
  std::ofstream gp(fs::path(dir) / (stem + ".gp"));
  gp << g.str();
  if (!gp) throw InputError("cannot write plot script '" + dir + "/" + stem + ".gp'");
}

void write_bar_chart_script(const BarChart& c, int width, int height, const std::string& dir,
                            const std::string& stem) {
  {
    // Rows: groups; columns: group label, then mean, low, high per series.
    std::ofstream dat(fs::path(dir) / (stem + ".dat"));
    dat << "# group";
    for (const auto& s : c.series) dat << "\t" << s.label << " mean\tlow\thigh";
    dat << "\n";
    for (size_t gi = 0; gi < c.groups.size(); ++gi) {
      dat << c.groups[gi];
      for (const auto& s : c.series) {
        dat << "\t" << num(s.mean[gi]) << "\t" << num(s.low[gi]) << "\t" << num(s.high[gi]);
      }
      dat << "\n";
    }
    if (!dat) throw InputError("cannot write plot data '" + dir + "/" + stem + ".dat'");
  }
  std::ostringstream g;
  g << "# " << c.title << " (gnuplot " << stem << ".gp writes " << stem << ".png/.pdf/.svg)\n"
    << common_header() << "set title " << quoted(c.title) << " noenhanced\n"
    << "set ylabel " << quoted(c.y_label) << " noenhanced\n"
    << "set style data histograms\nset style histogram errorbars gap 1.5 lw 1\n"
    << "set boxwidth 0.9\nset key bmargin center horizontal width 1\nset xtics noenhanced\n"
    << "set offsets 0, 0, graph 0.06, 0\n";
  // Bars start at the lowest value's floor when every value is positive and far from 0 (PSNR).
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : c.series) {
    for (size_t i = 0; i < s.mean.size(); ++i) {
      for (double v : {s.mean[i], s.low[i], s.high[i]}) {
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
      }
    }
  }
  double lowest_mean = INFINITY;
  for (const auto& s : c.series) {
    for (double m : s.mean) {
      if (std::isfinite(m)) lowest_mean = std::min(lowest_mean, m);
    }
  }
  if (std::isfinite(lo) && lo > 0 && lo > 0.5 * hi) {
    g << "set yrange [" << num(std::floor(lo - 0.1 * (hi - lo))) << ":*]\n";
  } else if (std::isfinite(lo) && (lo >= 0 || lowest_mean >= 0)) {
    // Non-negative means (PSNR, MSE): the axis starts at 0 even where an interval reaches below.
    g << "set yrange [0:*]\n";
  }
  std::ostringstream plot;
  plot << "plot ";
  const std::string data = quoted(stem + ".dat");
  // Fill patterns as a second encoding besides colour: solid first, then hatchings (gnuplot's
  // pattern 3 is solid too, so it is left out).
  const int patterns[] = {-1, 1, 4, 5, 2, 6, 7, 0};
  for (size_t k = 0; k < c.series.size(); ++k) {
    const int col = 2 + 3 * static_cast<int>(k);
    const int pattern = patterns[k % 8];
    plot << (k ? ", \\\n     " : "") << (k ? "''" : data) << " using " << col << ":" << col + 1
         << ":" << col + 2 << (k == 0 ? ":xtic(1)" : "") << " lc rgb '" << kPalette[k % kColours]
         << "' fs "
         << (pattern < 0 ? std::string("solid 0.85") : "pattern " + std::to_string(pattern))
         << " border lc rgb '#333333' title " << quoted(c.series[k].label);
  }
  plot << "\n";
  const std::string body = plot.str();
  // The key sits below the plot, one line per series: the figure grows with it, not the plot
  // area shrinks.
  const int key_lines = static_cast<int>(c.series.size());
  g << terminals(stem, width, height + std::max(0, key_lines - 4) * 16, body);
  std::ofstream gp(fs::path(dir) / (stem + ".gp"));
  gp << g.str();
  if (!gp) throw InputError("cannot write plot script '" + dir + "/" + stem + ".gp'");
}

void run_gnuplot(const std::string& gnuplot, const std::string& dir,
                 const std::vector<std::string>& stems) {
  if (stems.empty()) return;
  // One process for every script (each starts with `reset`), run in the figures' folder.
  std::string cmd = "cd " + quoted(dir) + " && " + quoted(gnuplot);
  for (const auto& s : stems) cmd += " " + quoted(s + ".gp");
  cmd += " > gnuplot.log 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream log(fs::path(dir) / "gnuplot.log");
    std::stringstream text;
    text << log.rdbuf();
    std::string msg = text.str();
    if (msg.size() > 600) msg = msg.substr(0, 600) + "...";
    throw InputError("plots: '" + gnuplot + "' failed (exit " + std::to_string(rc) +
                     "; Debian: apt-get install gnuplot-nox); the scripts are in " + dir +
                     (msg.empty() ? std::string() : ":\n" + msg));
  }
  fs::remove(fs::path(dir) / "gnuplot.log");
}

std::vector<std::string> write_ablation_plots(const ResultSet& rs, const PlotOptions& o,
                                              const std::string& dir, bool comparisons) {
  const ResultLayout layout = result_layout(rs);
  const std::vector<Variant>& variants = layout.variants;
  const auto& variant_of = layout.variant_of;
  const auto& sections = layout.sections;
  const auto& masks = layout.masks;
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
  // Per (section, variant, mask): each metric's scores.
  std::map<std::string, bool> higher;
  using Key = std::tuple<size_t, size_t, std::string>;
  std::map<Key, std::map<std::string, Spread>> scores;  // metric ("\x01s" = seconds) -> scores
  const std::string kSeconds = "\x01s";
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const CellRecord& c = rs.cells.at(s.cell_id);
    const size_t sec = layout.section_of(c);
    auto& m = scores[Key{sec, variant_of.at({c.method, c.settings_hash}), c.mask}];
    m[kSeconds].add(s.seconds);
    for (const auto& sc : s.scores) {
      m[sc.metric].add(sc.value);
      higher[sc.metric] = sc.higher_is_better;
    }
  }
  auto spread_of = [&](size_t sec, size_t v, const std::string& mask,
                       const std::string& metric) -> const Spread* {
    auto it = scores.find(Key{sec, v, mask});
    if (it == scores.end()) return nullptr;
    auto m = it->second.find(metric);
    return m == it->second.end() ? nullptr : &m->second;
  };
  auto y_label = [&](const std::string& metric) {
    return metric_display(metric) + ": mean, band 95% CI (" +
           (higher[metric] ? "higher" : "lower") + " is better)";
  };

  std::vector<std::string> stems;
  std::error_code ec;
  auto ensure_dir = [&] {
    if (!stems.empty()) return;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir, ec)) throw InputError("cannot create plot folder '" + dir + "'");
  };
  for (size_t sec = 0; sec < sections.size(); ++sec) {
    // File names: a model label such as "adm (precision=bf16)" becomes adm_precision_bf16.
    std::string prefix;
    if (sections.size() > 1) {
      for (char ch : sections[sec].first + "_" + sections[sec].second) {
        const bool keep =
            std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
        if (keep)
          prefix += ch;
        else if (!prefix.empty() && prefix.back() != '_')
          prefix += '_';
      }
      while (!prefix.empty() && prefix.back() == '_') prefix.pop_back();
      prefix += "_";
    }
    const std::string where = dataset_display(sections[sec].first) + ", " + sections[sec].second;

    if (comparisons) {
      // Method x mask grouped bars per metric.
      std::vector<size_t> shown;
      for (size_t v = 0; v < variants.size(); ++v) {
        for (const auto& mask : masks) {
          if (scores.count(Key{sec, v, mask})) {
            shown.push_back(v);
            break;
          }
        }
      }
      std::vector<std::string> used_masks;
      for (const auto& mask : masks) {
        for (size_t v : shown) {
          if (scores.count(Key{sec, v, mask})) {
            used_masks.push_back(mask);
            break;
          }
        }
      }
      for (const auto& metric : metrics) {
        BarChart c;
        c.title = metric_display(metric) + " by method and mask (" + where + ")";
        c.y_label = metric_display(metric) + ": mean, bars 95% CI (" +
                    (higher[metric] ? "higher" : "lower") + " is better)";
        for (const auto& mask : used_masks) c.groups.push_back(mask_display(mask));
        bool any = false;
        for (size_t v : shown) {
          BarChart::Series s;
          s.label = method_display(variants[v].method);
          if (!variants[v].varying.empty()) {
            std::string k;
            for (const auto& [key, val] : variants[v].varying)
              k += (k.empty() ? "" : ", ") + key + "=" + val;
            s.label += " (" + k + ")";
          }
          for (const auto& mask : used_masks) {
            const Spread* sp = spread_of(sec, v, mask, metric);
            const double m = sp ? sp->mean() : NAN, ci = sp ? sp->ci() : NAN;
            any = any || std::isfinite(m);
            s.mean.push_back(m);
            s.low.push_back(std::isfinite(ci) ? m - ci : m);
            s.high.push_back(std::isfinite(ci) ? m + ci : m);
          }
          c.series.push_back(std::move(s));
        }
        if (!any) continue;
        ensure_dir();
        const std::string stem = sanitize(prefix + "compare_" + metric);
        write_bar_chart_script(c, o.width, o.height, dir, stem);
        stems.push_back(stem);
      }
    }

    std::vector<std::string> methods;
    for (const auto& v : variants) {
      if (!v.varying.empty() &&
          std::find(methods.begin(), methods.end(), v.method) == methods.end())
        methods.push_back(v.method);
    }
    for (const auto& method : methods) {
      std::vector<size_t> mine;
      std::set<std::string> keys;
      for (size_t v = 0; v < variants.size(); ++v) {
        if (variants[v].method != method) continue;
        mine.push_back(v);
        for (const auto& kv : variants[v].varying) keys.insert(kv.first);
      }
      for (const auto& key : keys) {
        // The x axis: the values of `key`, numeric when they all are.
        std::vector<std::string> values;
        for (size_t v : mine) {
          auto it = variants[v].varying.find(key);
          const std::string val = it == variants[v].varying.end() ? "" : it->second;
          if (std::find(values.begin(), values.end(), val) == values.end()) values.push_back(val);
        }
        bool numeric = true;
        std::map<std::string, double> x_of;
        for (const auto& val : values) {
          double d = 0;
          numeric = numeric && parse_number(val, &d);
          x_of[val] = d;
        }
        bool log_x = false;
        if (numeric) {
          std::sort(values.begin(), values.end(),
                    [&](const std::string& a, const std::string& b) { return x_of[a] < x_of[b]; });
          std::vector<double> xs;
          for (const auto& val : values) xs.push_back(x_of[val]);
          log_x = geometric_sweep(xs);
        } else {
          for (size_t i = 0; i < values.size(); ++i) x_of[values[i]] = static_cast<double>(i);
        }
        // Lines: mask x the other varying settings' values.
        std::vector<std::pair<std::string, std::string>> lines;  // (mask, others label)
        std::map<std::pair<std::string, std::string>, std::map<std::string, size_t>> at;
        for (const auto& mask : masks) {
          for (size_t v : mine) {
            if (!scores.count(Key{sec, v, mask})) continue;
            std::string others;
            for (const auto& [k, val] : variants[v].varying)
              if (k != key) others += (others.empty() ? "" : ", ") + k + "=" + val;
            const auto line = std::make_pair(mask, others);
            if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
            auto it = variants[v].varying.find(key);
            at[line][it == variants[v].varying.end() ? "" : it->second] = v;
          }
        }
        if (lines.empty()) continue;
        std::vector<std::string> ys = metrics;
        ys.push_back(kSeconds);
        for (const auto& y : ys) {
          LinePlot p;
          const bool secs = y == kSeconds;
          p.title = method_display(method) + ": " +
                    (secs ? std::string("seconds per sample") : metric_display(y)) + " vs " + key +
                    " (" + where + ")";
          p.x_label = key + (log_x ? " (log scale)" : "");
          p.y_label = secs ? "seconds per sample (mean; band: 95% CI)" : y_label(y);
          p.log_x = log_x;
          for (const auto& val : values) {
            p.x_ticks.push_back(x_of[val]);
            p.x_tick_labels.push_back(val);
          }
          for (const auto& line : lines) {
            LinePlot::Series s;
            s.label = mask_display(line.first) + (line.second.empty() ? "" : ", " + line.second);
            for (const auto& val : values) {
              double yv = NAN, ci = NAN;
              auto v = at[line].find(val);
              if (v != at[line].end()) {
                if (const Spread* sp = spread_of(sec, v->second, line.first, y)) {
                  yv = sp->mean();
                  ci = sp->ci();
                }
              }
              s.points.emplace_back(x_of[val], yv);
              s.band.emplace_back(std::isfinite(ci) ? yv - ci : yv,
                                  std::isfinite(ci) ? yv + ci : yv);
            }
            p.series.push_back(std::move(s));
          }
          ensure_dir();
          const std::string stem =
              sanitize(prefix + method + "_" + key + "_" + (secs ? std::string("seconds") : y));
          write_line_plot_script(p, o.width, o.height, dir, stem);
          stems.push_back(stem);
        }
      }
    }
  }
  run_gnuplot(o.gnuplot, dir, stems);
  std::vector<std::string> written;
  for (const auto& s : stems) {
    for (const char* ext : {".png", ".pdf", ".svg"})
      written.push_back((fs::path(dir) / (s + ext)).string());
  }
  return written;
}

}  // namespace copaint
