// Display names, LaTeX escaping and the order and selection of metrics.
#include "experiments/report/display_names.h"

#include <algorithm>
#include <map>
#include <sstream>

#include "framework/core/options.h"

namespace copaint {

namespace {

std::string lookup(const std::map<std::string, std::string>& table, const std::string& name) {
  auto it = table.find(name);
  return it == table.end() ? name : it->second;
}

bool extends(const std::string& name, const std::string& prefix) {
  return name.size() > prefix.size() + 1 && name.compare(0, prefix.size(), prefix) == 0 &&
         name[prefix.size()] == '_';
}

}  // namespace

std::string method_display(const std::string& method) {
  static const std::map<std::string, std::string> names = {{"copaint", "CoPaint"},
                                                           {"copaint_tt", "CoPaint-TT"},
                                                           {"copaint_fast", "CoPaint-Fast"},
                                                           {"blended", "Blended"},
                                                           {"resample", "Resampling"},
                                                           {"repaint", "RePaint"},
                                                           {"ddnm", "DDNM"},
                                                           {"ddrm", "DDRM"},
                                                           {"dps", "DPS"}};
  return lookup(names, method);
}

std::string metric_display(const std::string& metric) {
  static const std::map<std::string, std::string> names = {{"psnr", "PSNR"},
                                                           {"psnr_masked", "PSNR (hole)"},
                                                           {"ssim", "SSIM"},
                                                           {"known_mse", "MSE (known)"},
                                                           {"lpips", "LPIPS"}};
  if (metric.rfind("lpips_", 0) == 0) {
    // lpips_alex_v0.1 is the paper's LPIPS; the other backbones are named.
    const std::string backbone = metric.substr(6, metric.find('_', 6) - 6);
    return backbone == "alex" ? "LPIPS" : "LPIPS (" + backbone + ")";
  }
  return lookup(names, metric);
}

std::string mask_display(const std::string& mask) {
  static const std::map<std::string, std::string> names = {
      {"half", "Half"},     {"expand", "Expand"}, {"line", "Altern"}, {"sr2", "S.R."},
      {"narrow", "Narrow"}, {"wide", "Wide"},     {"text", "Text"},   {"random", "Random"},
      {"box", "Box"},       {"file", "File"}};
  return lookup(names, mask);
}

std::string dataset_display(const std::string& dataset) {
  static const std::map<std::string, std::string> names = {{"celebahq", "CelebA-HQ"},
                                                           {"imagenet100", "ImageNet"},
                                                           {"fashion_mnist", "Fashion-MNIST"},
                                                           {"folder", "images"}};
  return lookup(names, dataset);
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_' || c == '&' || c == '%' || c == '#' || c == '$' || c == '{' || c == '}') {
      out += '\\';
      out += c;
    } else if (c == '~') {
      out += "\\textasciitilde{}";
    } else if (c == '^') {
      out += "\\textasciicircum{}";
    } else if (c == '\\') {
      out += "\\textbackslash{}";
    } else if (c == '<' || c == '>') {  // OT1 fonts print other glyphs for these
      out += c == '<' ? "\\textless{}" : "\\textgreater{}";
    } else if (s.compare(i, 2, "\xc2\xb1") == 0) {  // ±
      out += "$\\pm$";
      ++i;
    } else {
      out += c;
    }
  }
  return out;
}

std::string metric_latex(const std::string& metric, bool higher_is_better) {
  return latex_escape(metric_display(metric)) +
         (higher_is_better ? " $\\uparrow$" : " $\\downarrow$");
}

std::vector<std::string> configured_metrics(const std::vector<RunRecord>& runs) {
  for (const auto& r : runs) {
    std::istringstream in(r.config);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("metrics = ", 0) == 0) return split_list(line.substr(10));
    }
  }
  return {};
}

std::vector<std::string> order_metrics(const std::vector<std::string>& stored,
                                       const std::vector<std::string>& configured) {
  std::vector<std::pair<size_t, size_t>> rank;  // (configured position, appearance)
  for (size_t i = 0; i < stored.size(); ++i) {
    // An exact name first (psnr_masked is not psnr's), then a prefix (lpips: lpips_alex_v0.1).
    size_t pos = std::find(configured.begin(), configured.end(), stored[i]) - configured.begin();
    for (size_t c = 0; c < configured.size() && pos == configured.size(); ++c) {
      if (extends(stored[i], configured[c])) pos = c;
    }
    rank.emplace_back(pos, i);
  }
  std::sort(rank.begin(), rank.end());
  std::vector<std::string> out;
  for (const auto& [pos, i] : rank) out.push_back(stored[i]);
  return out;
}

bool metric_selected(const std::string& name, const std::vector<std::string>& wanted,
                     const std::vector<std::string>& stored) {
  if (wanted.empty()) return true;
  for (const auto& w : wanted) {
    if (name == w) return true;
    const bool stored_exactly = std::find(stored.begin(), stored.end(), w) != stored.end();
    if (!stored_exactly && extends(name, w)) return true;
  }
  return false;
}

}  // namespace copaint
