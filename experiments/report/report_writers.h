// Internal to write_report (experiments/report*.cpp): the data a report is written from, gathered
// once (per section, variant and mask: each metric's scores and the costs, and the samples the
// grid promises), the tables before rendering (shared by markdown and LaTeX), and the interface
// of the one writer per format (report_markdown.cpp, report_csv.cpp, report_latex.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "experiments/report/display_names.h"
#include "experiments/report/report.h"

namespace copaint::report_detail {

/// `v` with `precision` digits after the point; "nan", "inf", "-inf".
std::string fmt(double v, int precision);
/// The mean of `v` (NaN when empty).
double mean_of(const std::vector<double>& v);

/// Per (variant, mask) of one section: the scores of each metric and the costs.
struct Stats {
  std::map<std::string, std::vector<double>> values;   ///< metric -> scores
  std::map<std::string, std::vector<int64_t>> images;  ///< metric -> image index per score
  std::map<std::string, bool> higher;                  ///< metric -> direction
  std::vector<double> seconds, forwards, backwards;
  /// Samples whose non-finite gradients were counted (methods with gradients), those with at
  /// least one such step, and the steps (sample.nonfinite_grads).
  int64_t grads_counted = 0, nonfinite_samples = 0, nonfinite_steps = 0;
  int64_t peak = 0;
  int64_t ok = 0, errors = 0;
  std::set<int64_t> image_set;
};

struct Summary {
  int64_t samples = 0, images = 0, errors = 0;
  double mean = NAN, std = NAN, ci95 = NAN, best = NAN;
  int64_t per_image = 0;  ///< the most samples of one image (best-of-n is shown when > 1)
};

Summary summarise(const Stats& s, const std::string& metric);

/// The mask of a variant's stats pooled over its masks.
inline const std::string kAllMasks = "\x01all";

/// (section, variant, mask or kAllMasks).
using StatsKey = std::tuple<size_t, size_t, std::string>;

/// Everything a writer reads, gathered once by write_report from the results and options.
struct ReportData {
  ReportData(const ResultSet& r, const Completeness& c, const ReportOptions& o)
      : results(r), done(c), options(o) {}
  const ResultSet& results;
  const Completeness& done;
  const ReportOptions& options;
  std::string spread = "none";  ///< none | std | ci95 (ReportOptions::std folded in)
  bool masks_as_rows = false;   ///< pivot "mask x method"
  ResultLayout layout;
  std::vector<std::string> metrics;  ///< selected, in the experiment's order
  std::map<std::string, bool> higher;
  std::map<StatsKey, Stats> stats;
  /// Samples the grid promises per (section, variant, mask); absent: unknown.
  std::map<StatsKey, int64_t> promised;
  bool several = false;  ///< some cell has several samples of one image (best-of-n shown)

  const Stats* find(size_t sec, size_t v, const std::string& mask) const;
  bool higher_is_better(const std::string& metric) const;
  /// "[12/16]" when fewer ok samples with a score of `metric` (not NaN) are stored than
  /// promised, "[3/2]" when more (images removed from the dataset since they ran), else "": a
  /// metric added on a later run counts its own samples.
  std::string short_marker(const Stats* st, size_t sec, size_t v, const std::string& mask,
                           const std::string& metric) const;
};

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
/// every ranked column in the LaTeX text; ties share.
void mark_best(Table& t);

/// The tables of section `sec`, in order: the comparison tables (per the layout and pivot), the
/// ablation tables of each method with several variants, and with `timing` the timing table.
std::vector<Table> section_tables(const ReportData& data, size_t sec);

/// One writer per format: the report is begin, section for each (dataset, model) section in
/// order, end.
struct ReportWriter {
  void (*begin)(const ReportData& data, std::ostream& out);
  void (*section)(const ReportData& data, size_t sec, std::ostream& out);
  void (*end)(const ReportData& data, std::ostream& out);
};

ReportWriter markdown_writer();  ///< report_markdown.cpp
ReportWriter csv_writer();       ///< report_csv.cpp
ReportWriter latex_writer();     ///< report_latex.cpp

}  // namespace copaint::report_detail
