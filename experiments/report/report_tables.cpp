// The report's tables before rendering, shared by the markdown and LaTeX writers: the comparison
// tables (per metric, either pivot, or the paper's layout), the ablation tables and the timing
// table of one section, their cells (mean, spread, best-of-n, errors, completeness) and captions.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "experiments/report/report_writers.h"

namespace copaint::report_detail {

namespace {

std::string latex_label(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == ':' || c == '.'
               ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
               : '-';
  }
  return out;
}

std::string direction(const ReportData& d, const std::string& metric) {
  return d.higher_is_better(metric) ? "higher" : "lower";
}

/// "dataset fashion_mnist, model adm": the section in markdown titles.
std::string where_md(const ReportData& d, size_t sec) {
  const auto& s = d.layout.sections[sec];
  return "dataset " + s.first + ", model " + s.second;
}

std::string where_tex(const ReportData& d, size_t sec) {
  const auto& s = d.layout.sections[sec];
  return latex_escape(dataset_display(s.first)) + " (model " + latex_escape(s.second) + ")";
}

/// The label stem of the section's tables: "tab:<dataset>-<model>".
std::string section_label(const ReportData& d, size_t sec, const std::string& tail) {
  const auto& s = d.layout.sections[sec];
  return "tab:" + latex_label(s.first + "-" + s.second + tail);
}

std::string caption_tail(const ReportData& d) {
  std::string s = "Mean over samples";
  if (d.spread == "std") s += " $\\pm$ standard deviation";
  if (d.spread == "ci95") s += " $\\pm$ 95\\% confidence interval of the mean";
  if (d.several) s += "; in parentheses best of $n$ (each image's best sample)";
  s += ". Best in bold, second underlined.";
  return s;
}

std::string variant_tex(const Variant& v) {
  std::string s = method_display(v.method);
  if (!v.varying.empty()) {
    std::string k;
    for (const auto& [key, val] : v.varying) k += (k.empty() ? "" : ", ") + key + "=" + val;
    s += " (" + k + ")";
  }
  return latex_escape(s);
}

Cell label_cell(const std::string& md, const std::string& tex) {
  Cell c(md);
  c.tex_main = tex;
  return c;
}

Cell variant_cell(const Variant& v) { return label_cell(v.label, variant_tex(v)); }

/// The mean (ranked as printed, so values that print equal are marked equal), the spread, the
/// best-of-n and the errors of one (variant, mask).
/// `value` with `p` digits (rounded the same for ranking), and " ± spread" when `with_spread`.
Cell number_cell(double value, int p, bool with_spread, double spread) {
  Cell c;
  const double scale = std::pow(10.0, p);
  c.value = std::round(value * scale) / scale;
  c.md = fmt(value, p);
  c.tex_main = fmt(value, p);
  if (with_spread) {
    c.md += " ± " + fmt(spread, p);
    c.tex_rest += " {\\scriptsize $\\pm$ " + fmt(spread, p) + "}";
  }
  return c;
}

Cell value_cell(const ReportData& d, const Stats* st, const std::string& metric) {
  if (!st) return Cell("-");
  const Summary sm = summarise(*st, metric);
  if (sm.samples == 0) return Cell(st->errors ? "error" : "-");
  const int p = d.options.precision;
  Cell c = number_cell(sm.mean, p, d.spread != "none", d.spread == "std" ? sm.std : sm.ci95);
  if (sm.per_image > 1) {
    c.md += " (" + fmt(sm.best, p) + ")";
    c.tex_rest += " (" + fmt(sm.best, p) + ")";
  }
  if (st->errors) {
    c.md += " [" + std::to_string(st->errors) + " err]";
    c.tex_rest += " [" + std::to_string(st->errors) + " err]";
  }
  return c;
}

/// A value cell with its completeness marker (ReportData::short_marker).
Cell marked(const ReportData& d, size_t sec, size_t v, const std::string& mask,
            const std::string& metric) {
  const Stats* st = d.find(sec, v, mask);
  Cell c = value_cell(d, st, metric);
  const std::string m = d.short_marker(st, sec, v, mask, metric);
  c.md += m;
  c.tex_rest += m;
  return c;
}

/// The paper's Table 1: masks as column groups, metrics as sub-columns, methods as rows.
Table paper_table(const ReportData& d, size_t sec) {
  const auto& variants = d.layout.variants;
  Table t;
  t.title = "methods x masks, " + where_md(d, sec);
  t.caption = where_tex(d, sec) + ". " + caption_tail(d);
  t.label = section_label(d, sec, "");
  t.wide = true;
  t.header = {"method"};
  t.header_tex = {"Method"};
  t.rank = {-1};
  std::vector<std::string> used_masks;
  for (const auto& mask : d.layout.masks) {
    bool any = false;
    for (size_t v = 0; v < variants.size(); ++v) any = any || d.find(sec, v, mask);
    if (any) used_masks.push_back(mask);
  }
  for (const auto& mask : used_masks) {
    t.groups.emplace_back(latex_escape(mask_display(mask)), static_cast<int>(d.metrics.size()));
    for (const auto& metric : d.metrics) {
      t.header.push_back(mask + ": " + metric);
      t.header_tex.push_back(metric_latex(metric, d.higher_is_better(metric)));
      t.rank.push_back(d.higher_is_better(metric) ? 1 : 0);
    }
  }
  for (size_t v = 0; v < variants.size(); ++v) {
    if (!d.find(sec, v, kAllMasks)) continue;
    std::vector<Cell> row = {variant_cell(variants[v])};
    for (const auto& mask : used_masks) {
      for (const auto& metric : d.metrics) row.push_back(marked(d, sec, v, mask, metric));
    }
    t.rows.push_back(std::move(row));
  }
  return t;
}

/// The header of a table with the variants as rows and the masks as columns, ranked by `higher`.
void method_and_mask_columns(const ReportData& d, bool higher, Table& t) {
  t.header = {"method"};
  t.header_tex = {"Method"};
  t.rank = {-1};
  for (const auto& m : d.layout.masks) {
    t.header.push_back(m);
    t.header_tex.push_back(latex_escape(mask_display(m)));
    t.rank.push_back(higher ? 1 : 0);
  }
}

/// Rows the variants, columns the masks (pivot "method x mask").
void fill_methods_by_masks(const ReportData& d, size_t sec, const std::string& metric, Table& t) {
  const auto& variants = d.layout.variants;
  method_and_mask_columns(d, d.higher_is_better(metric), t);
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<Cell> row = {variant_cell(variants[v])};
    bool any = false;
    for (const auto& mask : d.layout.masks) {
      any = any || d.find(sec, v, mask);
      row.push_back(marked(d, sec, v, mask, metric));
    }
    if (any) t.rows.push_back(std::move(row));
  }
}

/// Rows the masks, columns the variants of this section (pivot "mask x method"); the best of
/// each row is marked (the rows' cells ranked as a column), so the columns are not ranked.
void fill_masks_by_methods(const ReportData& d, size_t sec, const std::string& metric, Table& t) {
  const auto& variants = d.layout.variants;
  std::vector<size_t> cols;
  for (size_t v = 0; v < variants.size(); ++v) {
    if (d.find(sec, v, kAllMasks)) cols.push_back(v);
  }
  t.header = {"mask"};
  t.header_tex = {"Mask"};
  t.rank = {-1};
  for (size_t v : cols) {
    t.header.push_back(variants[v].label);
    t.header_tex.push_back(variant_tex(variants[v]));
  }
  for (const auto& mask : d.layout.masks) {
    std::vector<Cell> row = {label_cell(mask, latex_escape(mask_display(mask)))};
    bool any = false;
    for (size_t v : cols) {
      any = any || d.find(sec, v, mask);
      row.push_back(marked(d, sec, v, mask, metric));
    }
    if (any) t.rows.push_back(std::move(row));
  }
  for (auto& r : t.rows) {
    Table col;
    col.rank = {d.higher_is_better(metric) ? 1 : 0};
    for (size_t i = 1; i < r.size(); ++i) col.rows.push_back({r[i]});
    mark_best(col);  // changes the LaTeX text only
    for (size_t i = 1; i < r.size(); ++i) {
      r[i] = col.rows[i - 1][0];
      r[i].value = NAN;  // already marked
    }
  }
}

/// One metric's comparison table (layout "metric").
Table metric_table(const ReportData& d, size_t sec, const std::string& metric) {
  Table t;
  t.title = metric + " (" + direction(d, metric) + " is better), " + where_md(d, sec);
  t.caption = metric_latex(metric, d.higher_is_better(metric)) + " on " + where_tex(d, sec) + ". " +
              caption_tail(d);
  t.label = section_label(d, sec, "-" + metric);
  if (d.masks_as_rows) {
    fill_masks_by_methods(d, sec, metric, t);
  } else {
    fill_methods_by_masks(d, sec, metric, t);
  }
  return t;
}

/// A metric over a set in one (variant, mask): "27.1234 ± 0.0100 (n=100)" (± where the metric
/// has a spread, n the samples used; "n=200, 2 seeds" where seeds are pooled: the mean of their
/// scores), "*" where the metric notes that n is too small (the note goes under the table).
Cell set_value_cell(const ReportData& d, size_t sec, size_t v, const std::string& mask,
                    const std::string& metric) {
  auto it = d.set_scores.find({StatsKey{sec, v, mask}, metric});
  if (it == d.set_scores.end()) return d.find(sec, v, mask) ? Cell("(incomplete)") : Cell("-");
  const SetSummary s = summarise_set(it->second);
  const int p = d.options.precision;
  Cell c = number_cell(s.value, p, std::isfinite(s.stddev), s.stddev);
  const std::string n = "n=" + std::to_string(s.samples) +
                        (s.cells > 1 ? ", " + std::to_string(s.cells) + " seeds" : "");
  c.md += " (" + n + ")";
  c.tex_rest += " {\\scriptsize (" + n + ")}";
  if (!s.notes.empty()) {
    c.md += "*";
    c.tex_rest += "$^*$";
  }
  return c;
}

/// One metric over a set: rows the variants, columns the masks, a score per complete cell.
Table set_metric_table(const ReportData& d, size_t sec, const std::string& metric) {
  const bool higher = d.higher_is_better(metric);
  Table t;
  t.title = metric + " over each complete cell (" + direction(d, metric) + " is better), " +
            where_md(d, sec);
  t.caption = latex_escape(metric) + (higher ? " $\\uparrow$" : " $\\downarrow$") + " on " +
              where_tex(d, sec) +
              ", over all samples of each complete cell against its reference images ($n$ "
              "samples).";
  t.label = section_label(d, sec, "-" + metric);
  method_and_mask_columns(d, higher, t);
  std::vector<std::string> notes;
  for (size_t v = 0; v < d.layout.variants.size(); ++v) {
    if (!d.find(sec, v, kAllMasks)) continue;
    std::vector<Cell> row = {variant_cell(d.layout.variants[v])};
    for (const auto& mask : d.layout.masks) {
      row.push_back(set_value_cell(d, sec, v, mask, metric));
      auto it = d.set_scores.find({StatsKey{sec, v, mask}, metric});
      if (it == d.set_scores.end()) continue;
      for (const auto& note : summarise_set(it->second).notes) {
        if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
      }
    }
    t.rows.push_back(std::move(row));
  }
  for (const auto& note : notes) {
    t.notes.push_back("* " + note);
    t.caption += " $^*$ " + latex_escape(note) + ".";
  }
  return t;
}

/// The settings that vary between the variants of `method`, sorted.
std::set<std::string> ablated_keys(const std::vector<Variant>& variants,
                                   const std::string& method) {
  std::set<std::string> keys;
  for (const auto& v : variants) {
    if (v.method == method)
      for (const auto& [k, val] : v.varying) keys.insert(k);
  }
  return keys;
}

/// The ablation of `method` over its varying settings `keys` for one metric: rows its variants
/// (the settings' values), then a column per mask, seconds and forwards per sample.
Table ablation_table(const ReportData& d, size_t sec, const std::string& method,
                     const std::set<std::string>& keys, const std::string& metric) {
  std::string over;
  for (const auto& k : keys) over += (over.empty() ? "" : " x ") + k;
  const bool higher = d.higher_is_better(metric);
  Table t;
  t.title = "ablation of " + method + " over " + over + ": " + metric + " (" +
            direction(d, metric) + " is better), " + where_md(d, sec);
  t.caption = "Ablation of " + latex_escape(method_display(method)) + " over " +
              latex_escape(over) + ": " + metric_latex(metric, higher) + " on " +
              where_tex(d, sec) + ". " + caption_tail(d);
  t.label = section_label(d, sec, "-" + method + "-" + over + "-" + metric);
  for (const auto& k : keys) {
    t.header.push_back(k);
    t.header_tex.push_back(latex_escape(k));
    t.rank.push_back(-1);
  }
  for (const auto& m : d.layout.masks) {
    t.header.push_back(m);
    t.header_tex.push_back(latex_escape(mask_display(m)));
    t.rank.push_back(higher ? 1 : 0);
  }
  for (const char* h : {"s/sample", "forwards/sample"}) {
    t.header.push_back(h);
    t.header_tex.push_back(h);
  }
  const auto& variants = d.layout.variants;
  for (size_t v = 0; v < variants.size(); ++v) {
    if (variants[v].method != method) continue;
    const Stats* all = d.find(sec, v, kAllMasks);
    if (!all) continue;
    std::vector<Cell> row;
    for (const auto& k : keys) {
      auto it = variants[v].varying.find(k);
      // Absent: an option left out of stored settings at its default (keyed_at_default).
      row.push_back(it == variants[v].varying.end() ? "(default)" : it->second);
    }
    for (const auto& mask : d.layout.masks) row.push_back(marked(d, sec, v, mask, metric));
    row.push_back(fmt(mean_of(all->seconds), 3));
    row.push_back(fmt(mean_of(all->forwards), 1));
    t.rows.push_back(std::move(row));
  }
  return t;
}

/// "-" (no gradients counted), "0", or "3 (7 steps)": samples with a non-finite gradient step.
Cell nonfinite_cell(const Stats& st) {
  if (st.grads_counted == 0) return Cell("-");
  if (st.nonfinite_samples == 0) return Cell("0");
  return Cell(std::to_string(st.nonfinite_samples) + " (" + std::to_string(st.nonfinite_steps) +
              " steps)");
}

/// Seconds, forwards, backwards and peak memory per sample of each variant.
Table timing_table(const ReportData& d, size_t sec) {
  Table t;
  t.title = "timing per sample, " + where_md(d, sec);
  t.caption = "Cost per sample on " + where_tex(d, sec) +
              ": seconds, UNet forwards and backwards, peak device memory (- where not measured: "
              "CPU runs).";
  t.label = section_label(d, sec, "-timing");
  t.caption +=
      " Non-finite: samples whose loss or gradient was non-finite at some gradient step "
      "(and the steps), - for methods without gradients.";
  t.header = {"method",   "samples",   "errors",   "seconds",
              "forwards", "backwards", "peak MiB", "non-finite grads"};
  t.header_tex = {"Method",   "samples",   "errors",   "seconds",
                  "forwards", "backwards", "peak MiB", "non-finite"};
  const auto& variants = d.layout.variants;
  for (size_t v = 0; v < variants.size(); ++v) {
    const Stats* all = d.find(sec, v, kAllMasks);
    if (!all) continue;
    t.rows.push_back(
        {variant_cell(variants[v]), std::to_string(all->ok), std::to_string(all->errors),
         fmt(mean_of(all->seconds), 3), fmt(mean_of(all->forwards), 1),
         fmt(mean_of(all->backwards), 1),
         // 0 = not measured (a CPU run): "-", never a number that is not one.
         all->peak > 0 ? Cell(fmt(static_cast<double>(all->peak) / 1048576.0, 1)) : Cell("-"),
         nonfinite_cell(*all)});
  }
  return t;
}

}  // namespace

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

std::vector<Table> section_tables(const ReportData& d, size_t sec) {
  std::vector<Table> out;
  auto add = [&](Table t) {
    if (!t.rows.empty()) out.push_back(std::move(t));
  };
  if (d.options.layout == "paper") {
    if (!d.metrics.empty()) add(paper_table(d, sec));
  } else {
    for (const auto& metric : d.metrics) add(metric_table(d, sec, metric));
  }
  for (const auto& metric : d.set_metrics) add(set_metric_table(d, sec, metric));
  // Ablations: a method with several variants, rows its varying settings.
  for (const auto& method : ablated_methods(d.layout.variants)) {
    const std::set<std::string> keys = ablated_keys(d.layout.variants, method);
    for (const auto& metric : d.metrics) add(ablation_table(d, sec, method, keys, metric));
  }
  if (d.options.timing) out.push_back(timing_table(d, sec));  // even when empty
  return out;
}

}  // namespace copaint::report_detail
