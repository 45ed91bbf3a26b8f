// The CSV report writer: one tidy row per (dataset, model, metric, variant, mask) with the
// sample and image counts, errors, mean, std, best-of-n mean, costs per sample, the 95% CI
// half-width and the samples promised (empty when unknown).
#include <ostream>
#include <string>

#include "experiments/report/report_writers.h"

namespace copaint::report_detail {

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void begin(const ReportData&, std::ostream& out) {
  out << "dataset,model,metric,higher_is_better,method,variant,settings,mask,samples,images,"
         "errors,mean,std,best_mean,seconds_per_sample,forwards_per_sample,"
         "backwards_per_sample,ci95,promised_samples,nonfinite_grad_samples\n";
}

void write_row(const ReportData& d, size_t sec, const std::string& metric, size_t v,
               const std::string& mask, const Stats& st, std::ostream& out) {
  const auto& section = d.layout.sections[sec];
  const Variant& variant = d.layout.variants[v];
  const Summary sm = summarise(st, metric);
  std::string settings;
  for (const auto& [k, val] : variant.varying)
    settings += (settings.empty() ? "" : ";") + k + "=" + val;
  out << csv_field(section.first) << "," << csv_field(section.second) << "," << csv_field(metric)
      << "," << (d.higher_is_better(metric) ? 1 : 0) << "," << csv_field(variant.method) << ","
      << csv_field(variant.label) << "," << csv_field(settings) << "," << csv_field(mask) << ","
      << sm.samples << "," << sm.images << "," << st.errors << "," << fmt(sm.mean, 10) << ","
      << fmt(sm.std, 10) << "," << fmt(sm.best, 10) << "," << fmt(mean_of(st.seconds), 6) << ","
      << fmt(mean_of(st.forwards), 2) << "," << fmt(mean_of(st.backwards), 2) << ","
      << fmt(sm.ci95, 10) << ",";
  auto pr = d.promised.find(StatsKey{sec, v, mask});
  if (pr != d.promised.end()) out << pr->second;
  out << ",";
  if (st.grads_counted > 0) out << st.nonfinite_samples;  // empty: no gradients counted
  out << "\n";
}

void section(const ReportData& d, size_t sec, std::ostream& out) {
  for (const auto& metric : d.metrics) {
    for (size_t v = 0; v < d.layout.variants.size(); ++v) {
      for (const auto& mask : d.layout.masks) {
        if (const Stats* st = d.find(sec, v, mask)) write_row(d, sec, metric, v, mask, *st, out);
      }
    }
  }
}

void end(const ReportData&, std::ostream&) {}

}  // namespace

ReportWriter csv_writer() { return {begin, section, end}; }

}  // namespace copaint::report_detail
