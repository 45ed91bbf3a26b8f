// `copaint report RESULTS` (tables) and `copaint export RESULTS` (PNG of a sample or a grid).
#include <cstdio>
#include <tuple>
#include <utility>

#include <boost/program_options.hpp>

#include "experiments/app/cli.h"
#include "experiments/app/command_args.h"
#include "experiments/app/run_command.h"
#include "experiments/report/input_compare.h"
#include "experiments/report/plots.h"
#include "experiments/report/report.h"
#include "experiments/store/merge.h"
#include "framework/core/error.h"
#include "framework/core/options.h"

namespace po = boost::program_options;

namespace copaint {
namespace {

/// The usage line and notes of `copaint report --help`.
const char* kReportUsage =
    "usage: copaint report RESULTS_DIR_OR_DB... [--format markdown|csv|latex] [--metric M]... "
    "[--timing] [--pivot 'mask x method'] [--layout metric|paper] [--spread none|std|ci95]\n"
    "       [--standalone] [--plots DIR] [--strict]\n\n"
    "Reads a results folder (results.sqlite and any results.shard-*.sqlite) or database files,\n"
    "and prints per metric the comparison table (rows: method variants, columns: masks; cells:\n"
    "mean over samples with seeds pooled, and in parentheses best-of-n, the mean over images of\n"
    "each image's best sample), ablation tables for methods run with settings axes, and with\n"
    "--timing seconds and UNet forwards/backwards per sample. --pivot 'mask x method'\n"
    "transposes the comparison tables (rows masks, columns method variants). Best-of-n is\n"
    "shown only where an image has several samples; metrics come in the experiment's order.\n\n"
    "--format latex: booktabs tables with display names (CoPaint-TT, PSNR (hole) $\\uparrow$),\n"
    "the best value per column bold and the second underlined, shrunk to the column or page\n"
    "width when wider. The preamble needs \\usepackage{booktabs} and \\usepackage{graphicx};\n"
    "--standalone writes a complete article. --layout paper: one table per dataset as the\n"
    "paper's Table 1 (masks as column groups, metrics as sub-columns, a page wide).\n\n"
    "--plots DIR also draws figures with gnuplot (Debian: gnuplot-nox), each as PNG, PDF and\n"
    "SVG beside its editable DIR/<name>.gp and .dat: per metric a method x mask grouped bar\n"
    "chart with 95% CI error bars (compare_<metric>.*), and for every ablation (a method run\n"
    "with settings axes) per swept setting each metric's mean with its 95% CI band and the\n"
    "seconds per sample against the setting (<method>_<setting>_<metric>.*; a log axis for\n"
    "geometric sweeps such as learning rates), one line per mask (and per value of the\n"
    "method's other swept settings); names get a <dataset>_<model>_ prefix when the results\n"
    "hold several. --metric selects the metrics. "
    "The files written are listed on stderr.\n\n"
    "Incomplete results say so: a table cell with fewer ok samples scored by its metric than\n"
    "the grid of the stored runs promises (images x samples x seeds, all shards; methods of\n"
    "`copaint score --as` too) is marked [scored/promised] (CSV: column promised_samples), and\n"
    "the report lists those cells, cells whose samples lack a metric of their grid, the grid's\n"
    "cells with no sample and missing shard files (also on stderr). --strict exits 1 when\n"
    "anything is incomplete. Markdown and LaTeX list each (dataset, mask) input set's SHA-256\n"
    "fingerprint (of the decoded images and mask bits, experiments/README.md).\n\n"
    "Options";

/// The options of `copaint report`.
po::options_description report_options() {
  po::options_description d(kReportUsage);
  d.add_options()("help,h", "print this help")(
      "format", po::value<std::string>()->default_value("markdown"), "markdown | csv | latex")(
      "metric", po::value<std::vector<std::string>>()->composing(),
      "only this metric (repeatable; exact: psnr is not psnr_masked; a name not stored, such as "
      "lpips, selects lpips_alex_v0.1)")("timing", po::bool_switch(), "add the timing table")(
      "std", po::bool_switch(), "show the standard deviation next to the mean (--spread std)")(
      "spread", po::value<std::string>()->default_value("none"),
      "next to the mean: none | std | ci95 (the 95% confidence interval of the mean)")(
      "layout", po::value<std::string>()->default_value("metric"),
      "metric (a table per metric, a column wide) | paper (masks x metrics columns, a page "
      "wide)")("standalone", po::bool_switch(),
               "latex: a complete document (article, booktabs, graphicx)")(
      "precision", po::value<int>()->default_value(4), "digits after the point")(
      "pivot", po::value<std::string>()->default_value("method x mask"),
      "comparison tables' ROWS x COLS: 'method x mask' (rows method variants) or "
      "'mask x method' (rows masks); spaces optional (maskxmethod)")(
      "plots", po::value<std::string>(),
      "write figures (PNG, PDF, SVG via gnuplot) into this folder")(
      "strict", po::bool_switch(),
      "exit 1 when a cell has fewer ok samples than promised, or cells or shards are missing")(
      "plot-size", po::value<std::string>()->default_value("640x480"),
      "PNG size WIDTHxHEIGHT in pixels (PDF and SVG: the same aspect)")(
      "inputs", po::value<std::vector<std::string>>(), "");
  return d;
}

/// What `copaint report` was asked, typed; strings stay at the edge (parse_report_request).
struct ReportRequest {
  std::vector<std::string> dbs;  ///< the databases to read
  /// Per argument (a results folder or database), its databases: `report A B` compares the
  /// folders' input fingerprints.
  std::vector<std::vector<std::string>> folders;
  std::vector<std::string> folder_names;
  ReportOptions report;
  bool plots = false;     ///< --plots given: figures too
  std::string plots_dir;  ///< where they go
  PlotOptions plot;
  bool strict = false;  ///< exit 1 when the results are incomplete
};

/// --plot-size WIDTHxHEIGHT, checked: at least 200x150, at most 10000 a side.
std::pair<int, int> parse_plot_size(const std::string& size) {
  int w = 0, h = 0;
  char extra = 0;
  if (std::sscanf(size.c_str(), "%dx%d%c", &w, &h, &extra) != 2 || w < 200 || h < 150 ||
      w > 10000 || h > 10000) {
    throw UsageError("report: --plot-size must be WIDTHxHEIGHT, at least 200x150, got '" + size +
                     "'");
  }
  return {w, h};
}

/// The flags as a ReportRequest (the inputs found as databases), checked.
ReportRequest parse_report_request(const po::variables_map& vm) {
  if (!vm.count("inputs")) throw UsageError("report: give a results folder or database");
  ReportRequest r;
  r.folder_names = vm["inputs"].as<std::vector<std::string>>();
  r.dbs = find_result_dbs(r.folder_names);
  for (const auto& f : r.folder_names) r.folders.push_back(find_result_dbs(f));
  ReportOptions& o = r.report;
  o.format = vm["format"].as<std::string>();
  if (o.format == "md") o.format = "markdown";
  if (vm.count("metric")) o.metrics = vm["metric"].as<std::vector<std::string>>();
  o.timing = vm["timing"].as<bool>();
  o.std = vm["std"].as<bool>();
  o.spread = vm["spread"].as<std::string>();
  o.layout = vm["layout"].as<std::string>();
  o.standalone = vm["standalone"].as<bool>();
  o.precision = vm["precision"].as<int>();
  o.pivot = vm["pivot"].as<std::string>();
  if (o.precision < 0 || o.precision > 12) throw UsageError("report: --precision must be 0..12");
  if (vm.count("plots")) {
    std::tie(r.plot.width, r.plot.height) = parse_plot_size(vm["plot-size"].as<std::string>());
    r.plot.metrics = o.metrics;
    r.plots = true;
    r.plots_dir = vm["plots"].as<std::string>();
  }
  r.strict = vm["strict"].as<bool>();
  return r;
}

/// Writes the report (and the figures, listed on stderr); 1 when incomplete and --strict.
int run_report(const ReportRequest& r, CommandContext& ctx) {
  for (const auto& w : input_differences(r.folders, r.folder_names))
    ctx.err << "copaint: report: warning: " << w << "\n";
  const ResultSet results = load_results(r.dbs);
  const Completeness done = check_completeness(results);
  write_report(results, done, r.report, ctx.out);
  if (r.plots) {
    const std::vector<std::string> files = write_ablation_plots(results, r.plot, r.plots_dir, true);
    if (files.empty()) ctx.err << "no scores in these results: no plots\n";
    for (const auto& f : files) ctx.err << "wrote " << f << "\n";
  }
  if (done.incomplete()) {
    ctx.err << "copaint: report: " << done.summary() << "\n";
    if (r.strict) return 1;
  }
  return 0;
}

int cmd_report(CommandContext& ctx) {
  const po::options_description d = report_options();
  po::variables_map vm = parse_command_args(ctx, d, {{"inputs", -1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  return run_report(parse_report_request(vm), ctx);
}

std::vector<int64_t> parse_ints(const std::string& text, const char* what) {
  std::vector<int64_t> out;
  for (const auto& item : split_list(text)) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw UsageError(std::string("export: ") + what + " must be integers, got '" + item + "'");
    }
  }
  return out;
}

int cmd_export(CommandContext& ctx) {
  po::options_description d(
      "usage: copaint export RESULTS_DIR_OR_DB --sample ID --out x.png\n"
      "       copaint export RESULTS_DIR_OR_DB --grid --out grid.png [--images 0,1] [--masks "
      "half,line] [--methods copaint,repaint]\n\nOptions");
  d.add_options()("help,h", "print this help")(
      "sample", po::value<int64_t>(),
      "id of a sample row (sample.id in the database; with a folder, of its results.sqlite)")(
      "grid", po::bool_switch(),
      "a labelled grid: a row per (image, mask); reference, masked input, each method's sample")(
      "out", po::value<std::string>(), "output image (PNG); required")(
      "images", po::value<std::string>(),
      "grid: image indices (default the first 4 stored); an index, seed or sample index that "
      "matches no stored sample is an error")("masks", po::value<std::string>(),
                                              "grid: masks (default all)")(
      "methods", po::value<std::string>(), "grid: method names or variant labels (default all)")(
      "sample-index", po::value<int64_t>()->default_value(0), "grid: which sample of each image")(
      "seed", po::value<int64_t>()->default_value(-1), "grid: which seed (default the first)")(
      "tile", po::value<int64_t>()->default_value(0),
      "grid: tile side in pixels (default the image size, at least 96)")(
      "input", po::value<std::string>(), "");
  po::variables_map vm = parse_command_args(ctx, d, {{"input", 1}});
  if (vm.count("help")) {
    ctx.out << d;
    return 0;
  }
  if (!vm.count("input")) throw UsageError("export: give a results folder or database");
  if (!vm.count("out")) throw UsageError("export: --out is required");
  const std::string input = vm["input"].as<std::string>(), out = vm["out"].as<std::string>();
  const std::vector<std::string> dbs = find_result_dbs(input);
  if (vm["grid"].as<bool>()) {
    GridOptions g;
    if (vm.count("images")) g.images = parse_ints(vm["images"].as<std::string>(), "--images");
    if (vm.count("masks")) g.masks = split_list(vm["masks"].as<std::string>());
    if (vm.count("methods")) g.methods = split_list(vm["methods"].as<std::string>());
    g.sample_index = vm["sample-index"].as<int64_t>();
    g.seed = vm["seed"].as<int64_t>();
    g.tile = vm["tile"].as<int64_t>();
    for (int64_t i : g.images) {
      if (i < 0) throw UsageError("export: --images must be >= 0, got " + std::to_string(i));
    }
    if (g.sample_index < 0 || g.seed < -1 || g.tile < 0 || g.tile > 4096) {
      throw UsageError(
          "export: --sample-index must be >= 0, --seed >= 0 (or -1: the first), --tile in [0, "
          "4096] (0: the image size)");
    }
    const int64_t tiles = export_grid(load_results(dbs), g, out);
    ctx.out << "wrote " << out << " (" << tiles << " tiles)\n";
    return 0;
  }
  if (!vm.count("sample")) throw UsageError("export: give --sample ID or --grid");
  std::string db = dbs.front();
  if (dbs.size() > 1) {
    bool found = false;
    for (const auto& f : dbs) {
      if (f.size() >= 14 && f.compare(f.size() - 14, 14, "results.sqlite") == 0) {
        db = f;
        found = true;
      }
    }
    if (!found) {
      throw UsageError("export: '" + input +
                       "' holds only shard databases; give one of them, or run `copaint merge` "
                       "first");
    }
  }
  export_sample(db, vm["sample"].as<int64_t>(), out);
  ctx.out << "wrote " << out << "\n";
  return 0;
}

}  // namespace

void register_report_command() {
  add_command({"report", "tables of stored results: methods x masks per metric, ablations, timing",
               cmd_report});
}

void register_export_command() {
  add_command(
      {"export", "a stored sample as PNG, or a labelled grid of inputs and samples", cmd_export});
}

}  // namespace copaint
