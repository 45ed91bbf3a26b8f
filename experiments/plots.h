// Ablation line plots of stored results (`copaint report --plots DIR`): for each method run with
// settings axes, each swept setting and each metric, a PNG of the metric against the setting
// (and one of seconds per sample against it), one line per mask (and per value of the method's
// other swept settings). Drawn with OpenCV.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "experiments/report.h"

namespace copaint {

/// What to plot.
struct PlotOptions {
  std::vector<std::string> metrics;  ///< names or prefixes as ReportOptions::metrics; empty = all
  int width = 640;                   ///< image width in pixels
  int height = 480;                  ///< image height in pixels
};

/// One line plot before drawing.
struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<double> x_ticks;             ///< tick positions on the x axis (data units)
  std::vector<std::string> x_tick_labels;  ///< one per x tick
  struct Series {
    std::string label;
    std::vector<std::pair<double, double>> points;  ///< (x, y) in x order; NaN y = no point
  };
  std::vector<Series> series;
};

/// Draws `plot` (axes, ticks with labels, axis labels, title, one coloured line with markers per
/// series and a legend) and writes it to `path` (PNG); throws InputError when it cannot.
void draw_line_plot(const LinePlot& plot, int width, int height, const std::string& path);

/// Writes the ablation plots of `results` into `dir` (created) and returns the files written, in
/// order. Per (dataset, model), method with several variants, and setting k that varies between
/// them: x = the values of k (numeric axis when every value is a number, else evenly spaced in
/// order of appearance), one line per mask and combination of the method's other varying settings,
/// y = the mean over ok samples of each metric (file `<method>_<k>_<metric>.png`) and the seconds
/// per sample (`<method>_<k>_seconds.png`); names are prefixed with `<dataset>_<model>_` when the
/// results hold several (dataset, model) sections, and characters other than letters, digits,
/// '.', '-' and '_' become '_'. No ablation in the results: nothing is written.
std::vector<std::string> write_ablation_plots(const ResultSet& results, const PlotOptions& options,
                                              const std::string& dir);

}  // namespace copaint
