// Figures of stored results (`copaint report --plots DIR`), drawn by gnuplot (Debian's
// gnuplot-nox: its cairo terminals write PNG and PDF, its svg terminal SVG). For every table a
// figure: per ablation (a method run with settings axes) and swept setting, each metric's mean
// with its 95% confidence band against the setting (a log axis for geometric sweeps such as
// learning rates), one line per mask (and per value of the method's other swept settings), and
// the seconds per sample; per metric a method x mask grouped bar chart with 95% CI error bars.
// Lines differ in colour, marker and dash pattern, bars in colour and fill pattern. Each figure
// is DIR/<name>.png, .pdf and .svg, from DIR/<name>.gp and .dat (kept: edit and rerun
// `gnuplot <name>.gp` to restyle).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "experiments/report/report.h"

namespace copaint {

/// What to plot.
struct PlotOptions {
  std::vector<std::string> metrics;  ///< as ReportOptions::metrics; empty = all
  int width = 640;                   ///< PNG width in pixels (PDF/SVG: the same aspect)
  int height = 480;                  ///< PNG height in pixels
  std::string gnuplot = "gnuplot";   ///< the gnuplot program
};

/// One line plot before drawing.
struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<double> x_ticks;             ///< tick positions on the x axis (data units)
  std::vector<std::string> x_tick_labels;  ///< one per x tick
  bool log_x = false;                      ///< logarithmic x axis
  struct Series {
    std::string label;
    /// (x, mean, low, high) in x order; NaN mean = no point, NaN low/high = no band there.
    std::vector<std::pair<double, double>> points;
    std::vector<std::pair<double, double>> band;  ///< (low, high) per point; empty = none
  };
  std::vector<Series> series;
};

/// One grouped bar chart: groups on the x axis (masks), a bar per series (methods) in each.
struct BarChart {
  std::string title, y_label;
  std::vector<std::string> groups;
  struct Series {
    std::string label;
    std::vector<double> mean, low, high;  ///< per group; NaN = no bar / no error bar
  };
  std::vector<Series> series;
};

/// Whether positive values are a geometric sweep (0.005, 0.01, 0.02, 0.05, 0.1; 1, 2, 5, 10):
/// at least 3 values, all > 0, spanning a factor >= 8, and more evenly spaced in log than linearly.
bool geometric_sweep(std::vector<double> values);

/// Writes DIR/STEM.dat and DIR/STEM.gp (a script that writes STEM.png, STEM.pdf and STEM.svg).
void write_line_plot_script(const LinePlot& plot, int width, int height, const std::string& dir,
                            const std::string& stem);
void write_bar_chart_script(const BarChart& chart, int width, int height, const std::string& dir,
                            const std::string& stem);
/// Runs gnuplot on the scripts DIR/STEM.gp (one process, in DIR); InputError naming the program
/// and its messages when it is missing or fails.
void run_gnuplot(const std::string& gnuplot, const std::string& dir,
                 const std::vector<std::string>& stems);

/// Writes the ablation plots of `results` into `dir` (created) and returns the figures written
/// (PNG, PDF, SVG of each), in order. Per (dataset, model), method with several variants, and
/// setting k that varies between them: x = the values of k (numeric axis when every value is a
/// number, logarithmic for a geometric sweep, else evenly spaced in order of appearance), one line
/// per mask and combination of the method's other varying settings, y = each metric's mean over
/// ok samples with its 95% confidence band (`<method>_<k>_<metric>.*`) and the seconds per sample
/// (`<method>_<k>_seconds.*`). Comparison bar charts: per metric, `compare_<metric>.*`, bars the
/// method variants, groups the masks (written when `comparisons`). Names are prefixed with
/// `<dataset>_<model>_` when the results hold several sections; characters other than letters,
/// digits, '.', '-' and '_' become '_'. Nothing to plot: nothing written.
std::vector<std::string> write_ablation_plots(const ResultSet& results, const PlotOptions& options,
                                              const std::string& dir, bool comparisons = false);

}  // namespace copaint
