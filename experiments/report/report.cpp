// Reports: loading results, their variants and layout, write_report's stages (check the
// options, gather the stats once, hand them to the format's writer: report_markdown.cpp,
// report_csv.cpp, report_latex.cpp over the tables of report_tables.cpp), and PNG exports (one
// sample, or a labelled grid drawn with OpenCV).
#include "experiments/report/report.h"

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

#include "experiments/imageio/image_io.h"
#include "experiments/report/display_names.h"
#include "experiments/report/report_writers.h"
#include "experiments/store/results_h5.h"
#include "framework/core/error.h"
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

namespace report_detail {

std::string fmt(double v, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return NAN;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

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

const Stats* ReportData::find(size_t sec, size_t v, const std::string& mask) const {
  auto it = stats.find(StatsKey{sec, v, mask});
  return it == stats.end() ? nullptr : &it->second;
}

bool ReportData::higher_is_better(const std::string& metric) const {
  auto it = higher.find(metric);
  return it != higher.end() && it->second;
}

std::string ReportData::short_marker(const Stats* st, size_t sec, size_t v, const std::string& mask,
                                     const std::string& metric) const {
  auto it = promised.find(StatsKey{sec, v, mask});
  int64_t ok = 0;
  if (st && st->values.count(metric)) {
    const std::vector<double>& values = st->values.at(metric);
    ok = std::count_if(values.begin(), values.end(), [](double x) { return !std::isnan(x); });
  }
  std::string marker;
  if (it != promised.end() && ok != it->second)  // fewer or more
    marker = " [" + std::to_string(ok) + "/" + std::to_string(it->second) + "]";
  // Samples that met a non-finite gradient (methods/gradients.h): never silently pooled.
  if (st && st->nonfinite_samples > 0)
    marker += " [nf " + std::to_string(st->nonfinite_samples) + "]";
  return marker;
}

}  // namespace report_detail

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
    for (const auto& set : db.input_sets()) {
      const bool seen = std::any_of(rs.input_sets.begin(), rs.input_sets.end(), [&](const auto& x) {
        return x.dataset_key == set.dataset_key && x.mask_key == set.mask_key &&
               x.fingerprint == set.fingerprint;
      });
      if (!seen) rs.input_sets.push_back(set);
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

std::vector<std::string> ablated_methods(const std::vector<Variant>& variants) {
  std::vector<std::string> methods;
  for (const auto& v : variants) {
    if (!v.varying.empty() && std::find(methods.begin(), methods.end(), v.method) == methods.end())
      methods.push_back(v.method);
  }
  return methods;
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

std::vector<std::string> stored_metrics(const ResultSet& rs) {
  std::vector<std::string> stored;
  for (const auto& s : rs.samples) {
    for (const auto& sc : s.scores) {
      if (std::find(stored.begin(), stored.end(), sc.metric) == stored.end())
        stored.push_back(sc.metric);
    }
  }
  return stored;
}

std::vector<std::string> selected_metrics(const ResultSet& rs,
                                          const std::vector<std::string>& wanted) {
  const std::vector<std::string> stored = stored_metrics(rs);
  std::vector<std::string> metrics;
  for (const auto& m : order_metrics(stored, configured_metrics(rs.runs))) {
    if (metric_selected(m, wanted, stored)) metrics.push_back(m);
  }
  return metrics;
}

namespace {

using report_detail::ReportData;
using report_detail::Stats;
using report_detail::StatsKey;

/// The writer of `format`; UsageError for an unknown one.
report_detail::ReportWriter writer_for(const std::string& format) {
  if (format == "markdown") return report_detail::markdown_writer();
  if (format == "csv") return report_detail::csv_writer();
  if (format == "latex") return report_detail::latex_writer();
  throw UsageError("report: unknown format '" + format + "'; valid: markdown, csv, latex");
}

/// Checks the pivot, layout and spread; sets the spread (std folded in) and the pivot.
void check_shape(const ReportOptions& o, ReportData& d) {
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
  d.spread = o.std && o.spread == "none" ? "std" : o.spread;
  if (d.spread != "none" && d.spread != "std" && d.spread != "ci95") {
    throw UsageError("report: unknown spread '" + o.spread + "'; valid: none, std, ci95");
  }
  d.masks_as_rows = pivot == "maskxmethod";
}

/// Adds sample `s` to the stats of one (section, variant, mask or all masks).
void add_sample(const SampleRecord& s, Stats& st, std::map<std::string, bool>& higher) {
  if (s.status != "ok") {
    ++st.errors;
    return;
  }
  ++st.ok;
  st.seconds.push_back(s.seconds);
  st.forwards.push_back(static_cast<double>(s.forwards));
  st.backwards.push_back(static_cast<double>(s.backwards));
  if (s.nonfinite_grads >= 0) {
    ++st.grads_counted;
    st.nonfinite_samples += s.nonfinite_grads > 0;
    st.nonfinite_steps += s.nonfinite_grads;
  }
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

/// (section, variant, mask) -> stats; (section, variant, kAllMasks) -> stats over masks.
void collect_stats(ReportData& d) {
  for (const auto& s : d.results.samples) {
    const CellRecord& c = d.results.cells.at(s.cell_id);
    const size_t sec = d.layout.section_of(c);
    const size_t v = d.layout.variant_of.at({c.method, c.settings_hash});
    for (const std::string& mask : {c.mask, report_detail::kAllMasks})
      add_sample(s, d.stats[StatsKey{sec, v, mask}], d.higher);
  }
}

/// Samples the grid promises per (section, variant, mask): a cell's promise times the seeds
/// pooled there (absent: unknown).
void collect_promised(ReportData& d) {
  for (const auto& [id, p] : d.done.promised) {
    const CellRecord& c = d.results.cells.at(id);
    const StatsKey k{d.layout.section_of(c), d.layout.variant_of.at({c.method, c.settings_hash}),
                     c.mask};
    d.promised[k] = std::max(d.promised[k], p.samples * p.seeds);
  }
}

/// Whether any cell has several samples of one image (then best-of-n is shown).
bool several_per_image(const ReportData& d) {
  for (const auto& [key, st] : d.stats) {
    if (std::get<2>(key) == report_detail::kAllMasks) continue;  // an image recurs there
    for (const auto& m : d.metrics) {
      if (report_detail::summarise(st, m).per_image > 1) return true;
    }
  }
  return false;
}

/// Checks the options and gathers what every writer reads.
ReportData gather(const ResultSet& rs, const Completeness& done, const ReportOptions& o) {
  ReportData d(rs, done, o);
  check_shape(o, d);
  d.layout = result_layout(rs);
  // Metrics in the experiment's order (its `metrics` key), then any others as they appear.
  d.metrics = selected_metrics(rs, o.metrics);
  check_metrics_exist(o.metrics, stored_metrics(rs));
  collect_stats(d);
  collect_promised(d);
  d.several = several_per_image(d);
  return d;
}

}  // namespace

void write_report(const ResultSet& rs, const ReportOptions& o, std::ostream& out) {
  write_report(rs, check_completeness(rs), o, out);
}

void write_report(const ResultSet& rs, const Completeness& done, const ReportOptions& o,
                  std::ostream& out) {
  const report_detail::ReportWriter writer = writer_for(o.format);
  const ReportData data = gather(rs, done, o);
  writer.begin(data, out);
  for (size_t sec = 0; sec < data.layout.sections.size(); ++sec) writer.section(data, sec, out);
  writer.end(data, out);
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

/// The grid's samples: (variant, mask, image) -> the sample of the chosen seed and index;
/// (mask, image) -> a sample holding its reference and mask; the images stored.
struct GridSamples {
  std::map<std::tuple<size_t, std::string, int64_t>, const SampleRecord*> by_key;
  std::map<std::pair<std::string, int64_t>, const SampleRecord*> inputs;
  std::set<int64_t> stored_images;
};

/// The variants that `methods` names (method or label; empty = all), in order.
std::vector<size_t> grid_columns(const std::vector<Variant>& variants,
                                 const std::vector<std::string>& methods) {
  std::vector<size_t> columns;
  for (size_t i = 0; i < variants.size(); ++i) {
    const bool wanted =
        methods.empty() ||
        std::find(methods.begin(), methods.end(), variants[i].method) != methods.end() ||
        std::find(methods.begin(), methods.end(), variants[i].label) != methods.end();
    if (wanted) columns.push_back(i);
  }
  if (columns.empty()) throw UsageError("export --grid: no stored method matches --methods");
  return columns;
}

/// The stored masks that `wanted` names (empty = all), in order of appearance.
std::vector<std::string> grid_masks(const ResultSet& rs, const std::vector<std::string>& wanted) {
  std::vector<std::string> masks;
  for (const auto& c : rs.cells) {
    const bool ok =
        wanted.empty() || std::find(wanted.begin(), wanted.end(), c.mask) != wanted.end();
    if (ok && std::find(masks.begin(), masks.end(), c.mask) == masks.end()) masks.push_back(c.mask);
  }
  return masks;
}

GridSamples grid_samples(const ResultSet& rs, const std::vector<Variant>& variants, int64_t seed,
                         int64_t sample_index) {
  std::map<std::pair<std::string, std::string>, size_t> variant_of;
  for (size_t i = 0; i < variants.size(); ++i)
    variant_of[{variants[i].method, variants[i].settings_hash}] = i;
  GridSamples g;
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const CellRecord& c = rs.cells.at(s.cell_id);
    g.inputs.emplace(std::make_pair(c.mask, s.image_index), &s);
    g.stored_images.insert(s.image_index);
    if (c.seed != seed || s.sample_index != sample_index) continue;
    g.by_key[{variant_of.at({c.method, c.settings_hash}), c.mask, s.image_index}] = &s;
  }
  return g;
}

template <class Set>
std::string joined(const Set& values) {
  std::string out;
  for (const auto& v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

/// A selection that matches nothing stored is an error (not a grid of placeholder tiles):
/// every --images index is stored, and some sample has the seed and sample index asked for.
void check_grid_selection(const ResultSet& rs, const GridSamples& g,
                          const std::vector<int64_t>& images, int64_t seed, int64_t sample_index,
                          const std::vector<size_t>& columns,
                          const std::vector<std::string>& masks) {
  for (int64_t i : images) {
    if (!g.stored_images.count(i)) {
      throw UsageError("export --grid: no stored sample of image " + std::to_string(i) +
                       " (stored images: " + joined(g.stored_images) + ")");
    }
  }
  std::set<int64_t> seeds, indexes;
  for (const auto& c : rs.cells) seeds.insert(c.seed);
  for (const auto& s : rs.samples) {
    if (s.status == "ok") indexes.insert(s.sample_index);
  }
  if (!seeds.count(seed))
    throw UsageError("export --grid: no stored seed " + std::to_string(seed) +
                     " (stored seeds: " + joined(seeds) + ")");
  bool any = false;
  for (const auto& [key, sample] : g.by_key) {
    const auto& [column, mask, image] = key;
    any = any || (std::count(columns.begin(), columns.end(), column) &&
                  std::count(masks.begin(), masks.end(), mask) &&
                  std::count(images.begin(), images.end(), image));
  }
  if (!any) {
    throw UsageError("export --grid: no stored sample with --sample-index " +
                     std::to_string(sample_index) + " and seed " + std::to_string(seed) +
                     " among the images, masks and methods selected (stored sample indexes: " +
                     joined(indexes) + ")");
  }
}

/// Reads stored images as HWC uint8, each HDF5 file opened once.
class GridReader {
 public:
  at::Tensor read(const SampleRecord& s, const std::string& path) {
    auto& f = files_[s.h5_file];
    if (!f) f = std::make_unique<ResultsH5>(s.h5_file, ResultsH5::Mode::kRead);
    return f->read_uint8(path);
  }

 private:
  std::map<std::string, std::unique_ptr<ResultsH5>> files_;
};

/// The canvas of a grid and where its tiles go.
struct GridCanvas {
  static constexpr int kLabelWidth = 110, kHeaderHeight = 28, kGap = 4;
  int64_t tile = 0;
  cv::Mat canvas;
  int64_t drawn = 0;

  GridCanvas(int64_t tile_side, int cols, int rows) : tile(tile_side) {
    const int t = static_cast<int>(tile);
    canvas = cv::Mat(kHeaderHeight + rows * (t + kGap), kLabelWidth + cols * (t + kGap), CV_8UC3,
                     cv::Scalar(255, 255, 255));
  }
  int x(int col) const { return kLabelWidth + col * (static_cast<int>(tile) + kGap); }
  int y(int row) const { return kHeaderHeight + row * (static_cast<int>(tile) + kGap); }
  void place(int col, int row, const cv::Mat& m) {
    const int t = static_cast<int>(tile);
    m.copyTo(canvas(cv::Rect(x(col), y(row), t, t)));
    ++drawn;
  }
};

/// One row of the grid: its labels, the reference and masked input, and each column's sample
/// (dark grey where missing).
void draw_grid_row(GridCanvas& g, int row, int64_t image, const std::string& mask,
                   const GridSamples& samples, const std::vector<size_t>& columns,
                   GridReader& reader) {
  const int t = static_cast<int>(g.tile), y = g.y(row);
  auto in = samples.inputs.find({mask, image});
  std::string id = std::to_string(image);
  if (in != samples.inputs.end() && !in->second->image_id.empty()) id = in->second->image_id;
  put_label(g.canvas, "img " + id, cv::Rect(0, y + t / 2 - 16, GridCanvas::kLabelWidth, 16));
  put_label(g.canvas, mask, cv::Rect(0, y + t / 2, GridCanvas::kLabelWidth, 16));
  const cv::Mat missing(t, t, CV_8UC3, cv::Scalar(64, 64, 64));
  if (in != samples.inputs.end()) {
    const at::Tensor ref = reader.read(*in->second, in->second->reference_path);
    // Masks are stored 0/1 (1 = known); older files may hold 0/255: nonzero is known.
    const at::Tensor known = reader.read(*in->second, in->second->mask_path).gt(0);
    const at::Tensor masked =
        at::where(known.expand_as(ref), ref, at::full_like(ref, 128)).contiguous();
    g.place(0, row, to_bgr(ref, g.tile));
    g.place(1, row, to_bgr(masked, g.tile));
  } else {
    g.place(0, row, missing);
    g.place(1, row, missing);
  }
  for (size_t k = 0; k < columns.size(); ++k) {
    auto it = samples.by_key.find({columns[k], mask, image});
    g.place(static_cast<int>(2 + k), row,
            it == samples.by_key.end()
                ? missing
                : to_bgr(reader.read(*it->second, it->second->sample_path), g.tile));
  }
}

}  // namespace

int64_t export_grid(const ResultSet& rs, const GridOptions& o, const std::string& out_path) {
  const std::vector<Variant> variants = result_variants(rs);
  const std::vector<size_t> columns = grid_columns(variants, o.methods);
  int64_t seed = o.seed;
  if (seed < 0 && !rs.cells.empty()) seed = rs.cells.front().seed;
  const std::vector<std::string> masks = grid_masks(rs, o.masks);
  const GridSamples samples = grid_samples(rs, variants, seed, o.sample_index);
  std::vector<int64_t> images = o.images;
  if (images.empty()) {
    for (int64_t i : samples.stored_images) {
      if (images.size() < 4) images.push_back(i);
    }
  }
  if (images.empty() || masks.empty()) throw InputError("export --grid: no stored samples");
  check_grid_selection(rs, samples, images, seed, o.sample_index, columns, masks);

  GridReader reader;
  int64_t tile = o.tile;
  if (tile <= 0) {
    const SampleRecord* any = samples.inputs.begin()->second;
    tile = std::max<int64_t>(96, reader.read(*any, any->reference_path).size(0));
  }
  GridCanvas g(tile, static_cast<int>(2 + columns.size()),
               static_cast<int>(images.size() * masks.size()));
  std::vector<std::string> headers = {"reference", "input"};
  for (size_t v : columns) headers.push_back(variants[v].label);
  for (size_t c = 0; c < headers.size(); ++c) {
    put_label(
        g.canvas, headers[c],
        cv::Rect(g.x(static_cast<int>(c)), 0, static_cast<int>(tile), GridCanvas::kHeaderHeight));
  }
  int row = 0;
  for (int64_t image : images) {
    for (const auto& mask : masks) draw_grid_row(g, row++, image, mask, samples, columns, reader);
  }
  write_image_file(out_path, g.canvas);  // atomic: never a truncated grid
  return g.drawn;
}

}  // namespace copaint
