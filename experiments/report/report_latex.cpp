// The LaTeX report writer: a preamble comment (or, standalone, a complete article), then each
// section's tables as booktabs `table`/`table*` floats with the best value per column bold and
// the second underlined, shrunk to the column or page width when wider.
#include <ostream>
#include <string>
#include <utility>

#include "experiments/report/report_writers.h"

namespace copaint::report_detail {

namespace {

void begin(const ReportData& d, std::ostream& out) {
  if (d.done.incomplete()) out << "% " << d.done.summary() << "\n";
  for (const auto& set : d.results.input_sets) {
    out << "% inputs " << set.dataset << " x " << set.mask << ": " << set.images
        << " images, sha256 " << set.fingerprint << "\n";
  }
  if (d.options.standalone) {
    out << "% copaint report: a complete document (pdflatex FILE.tex)\n"
        << "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        << "\\begin{document}\n\n";
  } else {
    out << "% copaint report. Preamble: \\usepackage{booktabs} (rules) and "
           "\\usepackage{graphicx} (\\resizebox); or `copaint report --format latex "
           "--standalone` for a complete document.\n\n";
  }
}

/// The column groups' row and their rules (the paper layout's masks).
void write_groups(const Table& t, std::ostream& out) {
  int at = 2;
  std::string rules;
  for (const auto& [text, span] : t.groups) {
    out << " & \\multicolumn{" << span << "}{c}{" << text << "}";
    rules += "\\cmidrule(lr){" + std::to_string(at) + "-" + std::to_string(at + span - 1) + "}";
    at += span;
  }
  out << " \\\\\n" << rules << "\n";
}

void render(Table t, std::ostream& out) {
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
  if (!t.groups.empty()) write_groups(t, out);
  for (size_t i = 0; i < cols; ++i) {
    out << (i ? " & " : "")
        << (i < t.header_tex.size() ? t.header_tex[i] : latex_escape(t.header[i]));
  }
  out << " \\\\\n\\midrule\n";
  for (const auto& r : t.rows) {
    for (size_t i = 0; i < r.size(); ++i) out << (i ? " & " : "") << r[i].tex_main << r[i].tex_rest;
    out << " \\\\\n";
  }
  out << "\\bottomrule\n\\end{tabular}}\n\\end{" << env << "}\n\n";
}

void section(const ReportData& d, size_t sec, std::ostream& out) {
  for (Table& t : section_tables(d, sec)) render(std::move(t), out);
}

void end(const ReportData& d, std::ostream& out) {
  if (d.options.standalone) out << "\\end{document}\n";
}

}  // namespace

ReportWriter latex_writer() { return {begin, section, end}; }

}  // namespace copaint::report_detail
