// The markdown report writer: a heading with what was read, the completeness summary and the
// failed samples' messages, then each section's tables as pipe tables under ### headings.
#include <algorithm>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "experiments/report/report_writers.h"

namespace copaint::report_detail {

namespace {

/// "# Results: <names>" and one line on what was read and what a cell shows.
void write_heading(const ReportData& d, std::ostream& out) {
  const ResultSet& rs = d.results;
  std::set<std::string> names;
  for (const auto& r : rs.runs) names.insert(r.name);
  std::string n;
  for (const auto& x : names) n += (n.empty() ? "" : ", ") + x;
  const std::string spread_md = d.spread == "std"    ? ", ± the standard deviation over samples"
                                : d.spread == "ci95" ? ", ± the half-width of the 95% confidence "
                                                       "interval of the mean (Student t)"
                                                     : "";
  const std::string best_md =
      d.several ? " and, in parentheses, best-of-n: each image's best sample, averaged over images"
                : "";
  out << "# Results: " << (n.empty() ? std::string("?") : n) << "\n\n"
      << rs.runs.size() << " run(s) from " << rs.sources.size() << " database(s), "
      << rs.samples.size() << " samples, " << rs.cells.size() << " cells. "
      << "Cells: mean over samples (seeds pooled)" << spread_md << best_md << ".\n\n";
}

/// Failed samples (a method error, or an image that could not be read and was skipped):
/// counted, with their distinct messages, most frequent first.
void write_failures(const ResultSet& rs, std::ostream& out) {
  std::map<std::string, int64_t> errors;
  int64_t failed = 0;
  for (const auto& s : rs.samples) {
    if (s.status == "ok") continue;
    ++failed;
    std::string e = s.error.empty() ? s.status : s.error;
    if (e.size() > 200) e = e.substr(0, 197) + "...";
    ++errors[e];
  }
  if (failed == 0) return;
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

/// How many samples met a non-finite loss or gradient (methods/gradients.h), when any did.
void write_nonfinite(const ResultSet& rs, std::ostream& out) {
  int64_t samples = 0, steps = 0;
  for (const auto& s : rs.samples) {
    if (s.status != "ok" || s.nonfinite_grads <= 0) continue;
    ++samples;
    steps += s.nonfinite_grads;
  }
  if (samples == 0) return;
  out << samples << " sample(s) met a non-finite loss or gradient at " << steps
      << " gradient step(s) (`[nf n]` marks their cells; the timing table counts them per "
         "method; column sample.nonfinite_grads). In reduced precision those steps were "
         "recomputed with a scaled loss, and zeroed where that failed.\n\n";
}

/// The inputs' fingerprints (framework/core/input_hash.h), one line per (dataset, mask).
void write_inputs(const ResultSet& rs, std::ostream& out) {
  if (rs.input_sets.empty()) return;
  out << "Inputs (SHA-256 fingerprint of the decoded images and mask bits, in image order):\n\n";
  for (const auto& set : rs.input_sets) {
    out << "- " << set.dataset << " x " << set.mask << " (" << set.dataset_key << ", "
        << set.mask_key << "): " << set.images << " images"
        << (set.unreadable ? ", " + std::to_string(set.unreadable) + " unreadable" : "")
        << ", sha256 " << set.fingerprint << "\n";
  }
  out << "\n";
}

void begin(const ReportData& d, std::ostream& out) {
  write_heading(d, out);
  if (d.done.incomplete()) {
    out << "**" << d.done.summary() << "**\n\n";
    for (const auto& n : d.done.notes) out << "Note: " << n << ".\n\n";
  }
  write_inputs(d.results, out);
  write_failures(d.results, out);
  write_nonfinite(d.results, out);
}

void render(const Table& t, std::ostream& out) {
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

void section(const ReportData& d, size_t sec, std::ostream& out) {
  for (const Table& t : section_tables(d, sec)) render(t, out);
}

void end(const ReportData&, std::ostream&) {}

}  // namespace

ReportWriter markdown_writer() { return {begin, section, end}; }

}  // namespace copaint::report_detail
