// Figures: aggregation of stored samples per (variant, mask) with 95% confidence intervals, and
// gnuplot scripts (data + script per figure, PNG/PDF/SVG from one gnuplot run); the figures of
// write_ablation_plots in stages: gather, per section the comparison bars and each ablation sweep.
#include "experiments/report/plots.h"

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

#include <sys/wait.h>

#include "experiments/report/display_names.h"
#include "framework/core/error.h"
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
    dat.close();  // a full disk shows at the flush
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
  gp.close();
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
    dat.close();  // a full disk shows at the flush
    if (!dat) throw InputError("cannot write plot data '" + dir + "/" + stem + ".dat'");
  }
  std::ostringstream g;
  g << "# " << c.title << " (gnuplot " << stem << ".gp writes " << stem << ".png/.pdf/.svg)\n"
    << common_header() << "set title " << quoted(c.title) << " noenhanced\n"
    << "set ylabel " << quoted(c.y_label) << " noenhanced\n"
    << "set style data histograms\nset style histogram errorbars gap 1.5 lw 1\n"
    << "set boxwidth 0.9\nset key bmargin center horizontal width 1\nset xtics noenhanced\n"
    << "set offsets 0, 0, graph 0.06, 0\n";
  double lo = INFINITY;
  for (const auto& s : c.series) {
    for (size_t i = 0; i < s.mean.size(); ++i) {
      for (double v : {s.mean[i], s.low[i], s.high[i]}) {
        if (std::isfinite(v)) lo = std::min(lo, v);
      }
    }
  }
  double lowest_mean = INFINITY;
  for (const auto& s : c.series) {
    for (double m : s.mean) {
      if (std::isfinite(m)) lowest_mean = std::min(lowest_mean, m);
    }
  }
  // Bars start at 0 (a bar's length is its value: an axis from 8 makes 9.18 and 9.10 look far
  // apart), even where an interval of non-negative means (PSNR, MSE) reaches below.
  if (std::isfinite(lo) && (lo >= 0 || lowest_mean >= 0)) g << "set yrange [0:*]\n";
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
  gp.close();
  if (!gp) throw InputError("cannot write plot script '" + dir + "/" + stem + ".gp'");
}

namespace {

/// A POSIX shell word: single quotes, a quote as '\''.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// Whether `path` is a complete figure of its kind: not empty, and a PNG up to its IEND chunk,
/// a PDF up to %%EOF, an SVG up to </svg> (a full disk leaves them empty or cut).
bool complete_figure(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || size == 0) return false;
  std::ifstream f(path, std::ios::binary);
  const std::streamoff tail = std::min<std::streamoff>(static_cast<std::streamoff>(size), 64);
  f.seekg(-tail, std::ios::end);
  std::string end(static_cast<size_t>(tail), '\0');
  f.read(&end[0], tail);
  if (!f) return false;
  const std::string ext = path.extension().string();
  if (ext == ".png") return end.find("IEND") != std::string::npos;
  if (ext == ".pdf") return end.find("%%EOF") != std::string::npos;
  if (ext == ".svg") return end.find("</svg>") != std::string::npos;
  return true;
}

std::string gnuplot_log(const std::string& dir) {
  std::ifstream log(fs::path(dir) / "gnuplot.log");
  std::stringstream text;
  text << log.rdbuf();
  std::string msg = text.str();
  if (msg.size() > 600) msg = msg.substr(0, 600) + "...";
  return msg.empty() ? std::string() : ":\n" + msg;
}

}  // namespace

void run_gnuplot(const std::string& gnuplot, const std::string& dir,
                 const std::vector<std::string>& stems) {
  if (stems.empty()) return;
  // One process for every script (each starts with `reset`), run in the figures' folder.
  std::string cmd = "cd " + shell_quoted(dir) + " && " + shell_quoted(gnuplot);
  for (const auto& s : stems) cmd += " " + shell_quoted(s + ".gp");
  cmd += " > gnuplot.log 2>&1";
  const int rc = std::system(cmd.c_str());
  const int code = rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code == 127) {  // the shell found no such program
    throw InputError("plots: '" + gnuplot +
                     "' not found (Debian: apt-get install gnuplot-nox); "
                     "the scripts are in " +
                     dir);
  }
  if (rc != 0) {
    throw InputError("plots: '" + gnuplot + "' failed (exit " + std::to_string(code) +
                     "); the scripts are in " + dir + gnuplot_log(dir));
  }
  for (const auto& s : stems) {
    for (const char* ext : {".png", ".pdf", ".svg"}) {
      const fs::path f = fs::path(dir) / (s + ext);
      if (!complete_figure(f)) {
        throw InputError("plots: gnuplot left '" + f.string() +
                         "' missing, empty or cut short (a full disk?); the scripts are in " + dir +
                         gnuplot_log(dir));
      }
    }
  }
  fs::remove(fs::path(dir) / "gnuplot.log");
}

namespace {

/// The "metric" of the seconds per sample.
const std::string kSeconds = "\x01s";

/// (section, variant, mask).
using PlotKey = std::tuple<size_t, size_t, std::string>;

/// What the figures are drawn from: per (section, variant, mask) each metric's scores of the ok
/// samples (kSeconds: their seconds).
struct PlotData {
  ResultLayout layout;
  std::vector<std::string> metrics;  ///< selected, in the experiment's order
  std::map<std::string, bool> higher;
  std::map<PlotKey, std::map<std::string, Spread>> scores;

  bool stored(size_t sec, size_t v, const std::string& mask) const {
    return scores.count(PlotKey{sec, v, mask}) > 0;
  }
  const Spread* spread_of(size_t sec, size_t v, const std::string& mask,
                          const std::string& metric) const {
    auto it = scores.find(PlotKey{sec, v, mask});
    if (it == scores.end()) return nullptr;
    auto m = it->second.find(metric);
    return m == it->second.end() ? nullptr : &m->second;
  }
  std::string direction(const std::string& metric) const {
    auto it = higher.find(metric);
    return it != higher.end() && it->second ? "higher" : "lower";
  }
};

PlotData gather_plot_data(const ResultSet& rs, const PlotOptions& o) {
  PlotData d;
  d.layout = result_layout(rs);
  d.metrics = selected_metrics(rs, o.metrics);
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const CellRecord& c = rs.cells.at(s.cell_id);
    const size_t sec = d.layout.section_of(c);
    auto& m = d.scores[PlotKey{sec, d.layout.variant_of.at({c.method, c.settings_hash}), c.mask}];
    m[kSeconds].add(s.seconds);
    for (const auto& sc : s.scores) {
      m[sc.metric].add(sc.value);
      d.higher[sc.metric] = sc.higher_is_better;
    }
  }
  return d;
}

/// The figures' folder (created before the first figure) and the stems written, in order.
struct Figures {
  const std::string& dir;
  const PlotOptions& options;
  std::vector<std::string> stems;

  void ensure_dir() {
    if (!stems.empty()) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir, ec)) throw InputError("cannot create plot folder '" + dir + "'");
  }
  void add(const LinePlot& p, const std::string& stem) {
    ensure_dir();
    write_line_plot_script(p, options.width, options.height, dir, stem);
    stems.push_back(stem);
  }
  void add(const BarChart& c, const std::string& stem) {
    ensure_dir();
    write_bar_chart_script(c, options.width, options.height, dir, stem);
    stems.push_back(stem);
  }
};

/// File names' prefix when there are several sections: a model label such as
/// "adm (precision=bf16)" becomes adm_precision_bf16.
std::string section_prefix(const ResultLayout& layout, size_t sec) {
  std::string prefix;
  if (layout.sections.size() < 2) return prefix;
  for (char ch : layout.sections[sec].first + "_" + layout.sections[sec].second) {
    const bool keep =
        std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
    if (keep)
      prefix += ch;
    else if (!prefix.empty() && prefix.back() != '_')
      prefix += '_';
  }
  while (!prefix.empty() && prefix.back() == '_') prefix.pop_back();
  return prefix + "_";
}

/// One section's figures: where it is in titles, and its file-name prefix.
struct SectionFigures {
  size_t sec;
  std::string where;
  std::string prefix;
};

/// A bar per variant (its display name with its varying settings), a group per mask.
BarChart::Series bar_series(const PlotData& d, const SectionFigures& s, size_t v,
                            const std::vector<std::string>& masks, const std::string& metric) {
  const Variant& variant = d.layout.variants[v];
  BarChart::Series out;
  out.label = method_display(variant.method);
  if (!variant.varying.empty()) {
    std::string k;
    for (const auto& [key, val] : variant.varying) k += (k.empty() ? "" : ", ") + key + "=" + val;
    out.label += " (" + k + ")";
  }
  for (const auto& mask : masks) {
    const Spread* sp = d.spread_of(s.sec, v, mask, metric);
    const double m = sp ? sp->mean() : NAN, ci = sp ? sp->ci() : NAN;
    out.mean.push_back(m);
    out.low.push_back(std::isfinite(ci) ? m - ci : m);
    out.high.push_back(std::isfinite(ci) ? m + ci : m);
  }
  return out;
}

/// Method x mask grouped bars per metric (compare_<metric>), the variants and masks with samples.
void write_comparisons(const PlotData& d, const SectionFigures& s, Figures& figures) {
  const auto& variants = d.layout.variants;
  std::vector<size_t> shown;
  for (size_t v = 0; v < variants.size(); ++v) {
    const auto& masks = d.layout.masks;
    if (std::any_of(masks.begin(), masks.end(),
                    [&](const auto& m) { return d.stored(s.sec, v, m); }))
      shown.push_back(v);
  }
  std::vector<std::string> used_masks;
  for (const auto& mask : d.layout.masks) {
    if (std::any_of(shown.begin(), shown.end(), [&](size_t v) { return d.stored(s.sec, v, mask); }))
      used_masks.push_back(mask);
  }
  for (const auto& metric : d.metrics) {
    BarChart c;
    c.title = metric_display(metric) + " by method and mask (" + s.where + ")";
    c.y_label =
        metric_display(metric) + ": mean, bars 95% CI (" + d.direction(metric) + " is better)";
    for (const auto& mask : used_masks) c.groups.push_back(mask_display(mask));
    bool any = false;
    for (size_t v : shown) {
      c.series.push_back(bar_series(d, s, v, used_masks, metric));
      for (double m : c.series.back().mean) any = any || std::isfinite(m);
    }
    if (any) figures.add(c, sanitize(s.prefix + "compare_" + metric));
  }
}

/// The x axis of a swept setting: its values (numeric order when all are numbers, else order of
/// appearance), their positions, and whether the axis is logarithmic (a geometric sweep).
struct SweepAxis {
  std::vector<std::string> values;
  std::map<std::string, double> x_of;
  bool log_x = false;
};

/// The value of `key` in a variant ("" when absent).
std::string value_of(const Variant& v, const std::string& key) {
  auto it = v.varying.find(key);
  return it == v.varying.end() ? "" : it->second;
}

SweepAxis sweep_axis(const std::vector<Variant>& variants, const std::vector<size_t>& mine,
                     const std::string& key) {
  SweepAxis a;
  for (size_t v : mine) {
    const std::string val = value_of(variants[v], key);
    if (std::find(a.values.begin(), a.values.end(), val) == a.values.end()) a.values.push_back(val);
  }
  bool numeric = true;
  for (const auto& val : a.values) {
    double x = 0;
    numeric = numeric && parse_number(val, &x);
    a.x_of[val] = x;
  }
  if (numeric) {
    std::sort(a.values.begin(), a.values.end(),
              [&](const std::string& l, const std::string& r) { return a.x_of[l] < a.x_of[r]; });
    std::vector<double> xs;
    for (const auto& val : a.values) xs.push_back(a.x_of[val]);
    a.log_x = geometric_sweep(xs);
  } else {
    for (size_t i = 0; i < a.values.size(); ++i) a.x_of[a.values[i]] = static_cast<double>(i);
  }
  return a;
}

/// The lines of a sweep: (mask, the other varying settings' values) in order, and per line the
/// variant at each value of the swept setting.
struct SweepLines {
  std::vector<std::pair<std::string, std::string>> lines;  ///< (mask, others label)
  std::map<std::pair<std::string, std::string>, std::map<std::string, size_t>> at;
};

SweepLines sweep_lines(const PlotData& d, size_t sec, const std::vector<size_t>& mine,
                       const std::string& key) {
  const auto& variants = d.layout.variants;
  SweepLines out;
  for (const auto& mask : d.layout.masks) {
    for (size_t v : mine) {
      if (!d.stored(sec, v, mask)) continue;
      std::string others;
      for (const auto& [k, val] : variants[v].varying)
        if (k != key) others += (others.empty() ? "" : ", ") + k + "=" + val;
      const auto line = std::make_pair(mask, others);
      if (std::find(out.lines.begin(), out.lines.end(), line) == out.lines.end())
        out.lines.push_back(line);
      out.at[line][value_of(variants[v], key)] = v;
    }
  }
  return out;
}

/// `y` (a metric or kSeconds) against the swept setting `key` of `method`: a line per
/// SweepLines line, its mean and 95% CI band at each value.
LinePlot sweep_plot(const PlotData& d, const SectionFigures& s, const std::string& method,
                    const std::string& key, const SweepAxis& axis, const SweepLines& lines,
                    const std::string& y) {
  LinePlot p;
  const bool secs = y == kSeconds;
  p.title = method_display(method) + ": " +
            (secs ? std::string("seconds per sample") : metric_display(y)) + " vs " + key + " (" +
            s.where + ")";
  p.x_label = key + (axis.log_x ? " (log scale)" : "");
  p.y_label = secs ? "seconds per sample (mean; band: 95% CI)"
                   : metric_display(y) + ": mean, band 95% CI (" + d.direction(y) + " is better)";
  p.log_x = axis.log_x;
  for (const auto& val : axis.values) {
    p.x_ticks.push_back(axis.x_of.at(val));
    p.x_tick_labels.push_back(val);
  }
  for (const auto& line : lines.lines) {
    LinePlot::Series series;
    series.label = mask_display(line.first) + (line.second.empty() ? "" : ", " + line.second);
    const auto& at = lines.at.at(line);
    for (const auto& val : axis.values) {
      double yv = NAN, ci = NAN;
      auto v = at.find(val);
      if (v != at.end()) {
        if (const Spread* sp = d.spread_of(s.sec, v->second, line.first, y)) {
          yv = sp->mean();
          ci = sp->ci();
        }
      }
      series.points.emplace_back(axis.x_of.at(val), yv);
      series.band.emplace_back(std::isfinite(ci) ? yv - ci : yv, std::isfinite(ci) ? yv + ci : yv);
    }
    p.series.push_back(std::move(series));
  }
  return p;
}

/// Per setting that varies between the variants of `method`: each metric and the seconds
/// against it (<method>_<setting>_<metric>, <method>_<setting>_seconds).
void write_ablation(const PlotData& d, const SectionFigures& s, const std::string& method,
                    Figures& figures) {
  const auto& variants = d.layout.variants;
  std::vector<size_t> mine;
  std::set<std::string> keys;
  for (size_t v = 0; v < variants.size(); ++v) {
    if (variants[v].method != method) continue;
    mine.push_back(v);
    for (const auto& kv : variants[v].varying) keys.insert(kv.first);
  }
  for (const auto& key : keys) {
    const SweepAxis axis = sweep_axis(variants, mine, key);
    const SweepLines lines = sweep_lines(d, s.sec, mine, key);
    if (lines.lines.empty()) continue;
    std::vector<std::string> ys = d.metrics;
    ys.push_back(kSeconds);
    for (const auto& y : ys) {
      const std::string name = y == kSeconds ? std::string("seconds") : y;
      figures.add(sweep_plot(d, s, method, key, axis, lines, y),
                  sanitize(s.prefix + method + "_" + key + "_" + name));
    }
  }
}

}  // namespace

std::vector<std::string> write_ablation_plots(const ResultSet& rs, const PlotOptions& o,
                                              const std::string& dir, bool comparisons) {
  const PlotData data = gather_plot_data(rs, o);
  Figures figures{dir, o, {}};
  const auto& sections = data.layout.sections;
  for (size_t sec = 0; sec < sections.size(); ++sec) {
    const SectionFigures s{sec, dataset_display(sections[sec].first) + ", " + sections[sec].second,
                           section_prefix(data.layout, sec)};
    if (comparisons) write_comparisons(data, s, figures);
    for (const auto& method : ablated_methods(data.layout.variants))
      write_ablation(data, s, method, figures);
  }
  run_gnuplot(o.gnuplot, dir, figures.stems);
  std::vector<std::string> written;
  for (const auto& s : figures.stems) {
    for (const char* ext : {".png", ".pdf", ".svg"})
      written.push_back((fs::path(dir) / (s + ext)).string());
  }
  return written;
}

}  // namespace copaint
