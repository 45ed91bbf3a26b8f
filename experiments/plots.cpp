// Ablation line plots: aggregation of stored samples per (variant, mask) and OpenCV drawing.
#include "experiments/plots.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "framework/error.h"

namespace copaint {
namespace fs = std::filesystem;

namespace {

const cv::Scalar kBlack(0, 0, 0), kGrey(200, 200, 200), kWhite(255, 255, 255);

/// Distinguishable line colours (BGR).
const cv::Scalar kPalette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                               {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127},
                               {34, 189, 188},  {207, 190, 23}};

std::string fmt_tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", std::abs(v) < 1e-12 ? 0.0 : v);
  return buf;
}

/// A font scale at which `text` is at most `max_width` pixels wide.
double fit_scale(const std::string& text, double scale, int max_width) {
  int base = 0;
  for (; scale > 0.25; scale -= 0.05) {
    if (cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base).width <= max_width) break;
  }
  return scale;
}

/// `text` with its left end (align 0), centre (1) or right end (2) at x, baseline at y.
void text_at(cv::Mat& m, const std::string& text, int x, int y, double scale, int align) {
  int base = 0;
  const cv::Size s = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base);
  const int left = align == 0 ? x : align == 1 ? x - s.width / 2 : x - s.width;
  cv::putText(m, text, cv::Point(left, y), cv::FONT_HERSHEY_SIMPLEX, scale, kBlack, 1,
              cv::LINE_AA);
}

/// Ticks at multiples of a 1-2-5 step covering [lo, hi] with about `n` intervals.
std::vector<double> nice_ticks(double lo, double hi, int n) {
  const double raw = (hi - lo) / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double f : {1.0, 2.0, 5.0, 10.0}) {
    step = f * mag;
    if (step >= raw) break;
  }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(t);
  return out;
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                      c == '_';
    out += keep ? c : '_';
  }
  return out;
}

bool parse_number(const std::string& s, double* v) {
  try {
    size_t used = 0;
    *v = std::stod(s, &used);
    return used == s.size() && std::isfinite(*v);
  } catch (const std::exception&) {
    return false;
  }
}

bool metric_wanted(const std::string& name, const std::vector<std::string>& wanted) {
  if (wanted.empty()) return true;
  for (const auto& w : wanted) {
    if (name == w || name.rfind(w + "_", 0) == 0) return true;
  }
  return false;
}

/// Sums for a mean.
struct Mean {
  double sum = 0;
  int64_t n = 0;
  void add(double v) {
    if (std::isnan(v)) return;
    sum += v;
    ++n;
  }
  double get() const { return n ? sum / static_cast<double>(n) : NAN; }
};

}  // namespace

void draw_line_plot(const LinePlot& p, int width, int height, const std::string& path) {
  if (width < 200 || height < 150) throw UsageError("plot size must be at least 200x150");
  cv::Mat m(height, width, CV_8UC3, kWhite);
  const int left = 80, right = std::min(190, width / 3), top = 40, bottom = 56;
  const cv::Rect area(left, top, width - left - right, height - top - bottom);

  // Data ranges.
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (double x : p.x_ticks) x0 = std::min(x0, x), x1 = std::max(x1, x);
  for (const auto& s : p.series) {
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      if (std::isfinite(y)) y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (!std::isfinite(y0)) y0 = 0, y1 = 1;
  if (x1 - x0 <= 0) x0 -= 1, x1 += 1;
  if (y1 - y0 <= 1e-12 * std::max(1.0, std::abs(y0))) {
    const double d = std::abs(y0) > 0 ? std::abs(y0) * 0.1 : 1.0;
    y0 -= d, y1 += d;
  }
  const double xpad = (x1 - x0) * 0.06, ypad = (y1 - y0) * 0.08;
  x0 -= xpad, x1 += xpad, y0 -= ypad, y1 += ypad;
  auto px = [&](double x) {
    return area.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * area.width));
  };
  auto py = [&](double y) {
    return area.y + area.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * area.height));
  };

  // Grid, ticks and tick labels.
  for (double t : nice_ticks(y0, y1, 5)) {
    const int y = py(t);
    cv::line(m, {area.x, y}, {area.x + area.width, y}, kGrey, 1);
    cv::line(m, {area.x - 5, y}, {area.x, y}, kBlack, 1);
    text_at(m, fmt_tick(t), area.x - 8, y + 4, 0.4, 2);
  }
  for (size_t i = 0; i < p.x_ticks.size(); ++i) {
    const int x = px(p.x_ticks[i]);
    cv::line(m, {x, area.y + area.height}, {x, area.y + area.height + 5}, kBlack, 1);
    const std::string& label = i < p.x_tick_labels.size() ? p.x_tick_labels[i] : "";
    text_at(m, label, x, area.y + area.height + 20, 0.4, 1);
  }
  cv::rectangle(m, area, kBlack, 1);

  // Labels and title.
  text_at(m, p.x_label, area.x + area.width / 2, height - 12,
          fit_scale(p.x_label, 0.5, area.width), 1);
  text_at(m, p.title, width / 2, 26, fit_scale(p.title, 0.55, width - 20), 1);
  if (!p.y_label.empty()) {
    // Rendered horizontally into a strip, then rotated to read bottom to top.
    const double scale = fit_scale(p.y_label, 0.5, area.height);
    int base = 0;
    const cv::Size s = cv::getTextSize(p.y_label, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base);
    cv::Mat strip(s.height + base + 4, s.width + 4, CV_8UC3, kWhite);
    cv::putText(strip, p.y_label, cv::Point(2, s.height + 2), cv::FONT_HERSHEY_SIMPLEX, scale,
                kBlack, 1, cv::LINE_AA);
    cv::Mat rotated;
    cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int ry = std::max(0, area.y + (area.height - rotated.rows) / 2);
    const int rh = std::min(rotated.rows, height - ry);
    rotated(cv::Rect(0, 0, rotated.cols, rh)).copyTo(m(cv::Rect(6, ry, rotated.cols, rh)));
  }

  // Lines, markers and the legend.
  const int n_colours = static_cast<int>(sizeof kPalette / sizeof kPalette[0]);
  const int legend_x = area.x + area.width + 12;
  for (size_t k = 0; k < p.series.size(); ++k) {
    const cv::Scalar colour = kPalette[k % n_colours];
    const auto& pts = p.series[k].points;
    for (size_t i = 0; i < pts.size(); ++i) {
      if (!std::isfinite(pts[i].second)) continue;
      const cv::Point at(px(pts[i].first), py(pts[i].second));
      if (i > 0 && std::isfinite(pts[i - 1].second))
        cv::line(m, {px(pts[i - 1].first), py(pts[i - 1].second)}, at, colour, 2, cv::LINE_AA);
      cv::circle(m, at, 4, colour, cv::FILLED, cv::LINE_AA);
    }
    const int ly = area.y + 12 + static_cast<int>(k) * 20;
    if (ly > height - 8) continue;
    cv::line(m, {legend_x, ly - 4}, {legend_x + 20, ly - 4}, colour, 2, cv::LINE_AA);
    cv::circle(m, {legend_x + 10, ly - 4}, 3, colour, cv::FILLED, cv::LINE_AA);
    const std::string& label = p.series[k].label;
    text_at(m, label, legend_x + 26, ly, fit_scale(label, 0.4, width - legend_x - 30), 0);
  }

  bool ok = false;
  try {
    ok = cv::imwrite(path, m);
  } catch (const cv::Exception& e) {
    throw InputError("cannot write plot '" + path + "': " + e.what());
  }
  if (!ok) throw InputError("cannot write plot '" + path + "'");
}

std::vector<std::string> write_ablation_plots(const ResultSet& rs, const PlotOptions& o,
                                              const std::string& dir) {
  const ResultLayout layout = result_layout(rs);
  const std::vector<Variant>& variants = layout.variants;
  const auto& variant_of = layout.variant_of;
  const auto& sections = layout.sections;
  const auto& masks = layout.masks;
  // Per (section, variant, mask) the means.
  std::vector<std::string> metrics;
  std::map<std::string, bool> higher;
  using Key = std::tuple<size_t, size_t, std::string>;
  std::map<Key, std::map<std::string, Mean>> means;  // metric ("\x01s" = seconds) -> mean
  const std::string kSeconds = "\x01s";
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    const CellRecord& c = rs.cells.at(s.cell_id);
    const size_t sec = layout.section_of(c);
    auto& m = means[Key{sec, variant_of.at({c.method, c.settings_hash}), c.mask}];
    m[kSeconds].add(s.seconds);
    for (const auto& sc : s.scores) {
      if (!metric_wanted(sc.metric, o.metrics)) continue;
      m[sc.metric].add(sc.value);
      higher[sc.metric] = sc.higher_is_better;
      if (std::find(metrics.begin(), metrics.end(), sc.metric) == metrics.end())
        metrics.push_back(sc.metric);
    }
  }

  std::vector<std::string> written;
  std::error_code ec;
  for (size_t sec = 0; sec < sections.size(); ++sec) {
    // File names: a model label such as "adm (precision=bf16)" becomes adm_precision_bf16.
    std::string prefix;
    if (sections.size() > 1) {
      for (char ch : sections[sec].first + "_" + sections[sec].second) {
        const bool keep = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' ||
                          ch == '.';
        if (keep) prefix += ch;
        else if (!prefix.empty() && prefix.back() != '_') prefix += '_';
      }
      while (!prefix.empty() && prefix.back() == '_') prefix.pop_back();
      prefix += "_";
    }
    const std::string where = sections[sec].first + ", " + sections[sec].second;
    std::vector<std::string> methods;
    for (const auto& v : variants) {
      if (!v.varying.empty() && std::find(methods.begin(), methods.end(), v.method) == methods.end())
        methods.push_back(v.method);
    }
    for (const auto& method : methods) {
      std::vector<size_t> mine;
      std::set<std::string> keys;
      for (size_t v = 0; v < variants.size(); ++v) {
        if (variants[v].method != method) continue;
        mine.push_back(v);
        for (const auto& kv : variants[v].varying) keys.insert(kv.first);
      }
      for (const auto& key : keys) {
        // The x axis: the values of `key`, numeric when they all are.
        std::vector<std::string> values;
        for (size_t v : mine) {
          auto it = variants[v].varying.find(key);
          const std::string val = it == variants[v].varying.end() ? "" : it->second;
          if (std::find(values.begin(), values.end(), val) == values.end()) values.push_back(val);
        }
        bool numeric = true;
        std::map<std::string, double> x_of;
        for (const auto& val : values) {
          double d = 0;
          numeric = numeric && parse_number(val, &d);
          x_of[val] = d;
        }
        if (numeric) {
          std::sort(values.begin(), values.end(),
                    [&](const std::string& a, const std::string& b) { return x_of[a] < x_of[b]; });
        } else {
          for (size_t i = 0; i < values.size(); ++i) x_of[values[i]] = static_cast<double>(i);
        }
        // Lines: mask x the other varying settings' values.
        std::vector<std::pair<std::string, std::string>> lines;  // (mask, others label)
        std::map<std::pair<std::string, std::string>, std::map<std::string, size_t>> at;
        for (const auto& mask : masks) {
          for (size_t v : mine) {
            if (!means.count(Key{sec, v, mask})) continue;
            std::string others;
            for (const auto& [k, val] : variants[v].varying)
              if (k != key) others += (others.empty() ? "" : ", ") + k + "=" + val;
            const auto line = std::make_pair(mask, others);
            if (std::find(lines.begin(), lines.end(), line) == lines.end()) lines.push_back(line);
            auto it = variants[v].varying.find(key);
            at[line][it == variants[v].varying.end() ? "" : it->second] = v;
          }
        }
        if (lines.empty()) continue;
        std::vector<std::string> ys = metrics;
        ys.push_back(kSeconds);
        for (const auto& y : ys) {
          LinePlot p;
          const bool secs = y == kSeconds;
          p.title = method + ": " + (secs ? std::string("seconds per sample") : y) + " vs " +
                    key + " (" + where + ")";
          p.x_label = key;
          p.y_label = secs ? "seconds per sample"
                           : y + " (mean, " + (higher[y] ? "higher" : "lower") + " is better)";
          for (const auto& val : values) {
            p.x_ticks.push_back(x_of[val]);
            p.x_tick_labels.push_back(val);
          }
          for (const auto& line : lines) {
            LinePlot::Series s;
            s.label = line.first + (line.second.empty() ? "" : ", " + line.second);
            for (const auto& val : values) {
              double yv = NAN;
              auto v = at[line].find(val);
              if (v != at[line].end()) {
                auto m = means.find(Key{sec, v->second, line.first});
                if (m != means.end()) {
                  auto mm = m->second.find(y);
                  if (mm != m->second.end()) yv = mm->second.get();
                }
              }
              s.points.emplace_back(x_of[val], yv);
            }
            p.series.push_back(std::move(s));
          }
          if (written.empty()) {
            fs::create_directories(dir, ec);
            if (!fs::is_directory(dir, ec))
              throw InputError("cannot create plot folder '" + dir + "'");
          }
          const std::string file =
              (fs::path(dir) /
               sanitize(prefix + method + "_" + key + "_" + (secs ? std::string("seconds") : y) +
                        ".png"))
                  .string();
          draw_line_plot(p, o.width, o.height, file);
          written.push_back(file);
        }
      }
    }
  }
  return written;
}

}  // namespace copaint
