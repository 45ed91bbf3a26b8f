// The paper-ready tables of `copaint report`: LaTeX that compiles as emitted (pdflatex, when
// installed: Debian's texlive-latex-recommended) without overfull boxes, golden files of both
// layouts, direction-aware bold/underline, display names, metric order and exact selection.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "experiments/report/display_names.h"
#include "experiments/report/report.h"
#include "experiments/store/results_db.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_latex_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// A quickstart-like result set: 4 methods x `masks` x 5 metrics, 3 images, `samples` each;
/// scores are a fixed function of (method, mask, metric, image, sample).
std::string make_results(const fs::path& dir, const std::vector<std::string>& masks, int samples) {
  const std::string path = (dir / "results.sqlite").string();
  ResultsDb db(path, true);
  RunRecord run;
  run.name = "golden";
  run.config = "masks = x\nmetrics = psnr, ssim, lpips, psnr_masked, known_mse\nname = golden\n";
  run.config_hash = "0";
  db.add_run(run);
  const std::vector<std::string> methods = {"copaint", "copaint_tt", "blended", "repaint"};
  // Stored in another order than configured: the report must follow the configuration.
  const std::vector<std::pair<std::string, bool>> metrics = {{"known_mse", false},
                                                             {"lpips_alex_v0.1", false},
                                                             {"psnr", true},
                                                             {"psnr_masked", true},
                                                             {"ssim", true}};
  int64_t position = 0;
  for (size_t m = 0; m < methods.size(); ++m) {
    for (size_t k = 0; k < masks.size(); ++k) {
      CellRecord c;
      c.key = methods[m] + "/" + masks[k];
      c.position = position++;
      c.method = methods[m];
      c.settings = "respacing = 25\n";
      c.settings_hash = "h";
      c.dataset = "fashion_mnist";
      c.mask = masks[k];
      c.model = "adm";
      const int64_t id = db.ensure_cell(c);
      std::vector<SampleRecord> rows;
      for (int i = 0; i < 3; ++i) {
        for (int s = 0; s < samples; ++s) {
          SampleRecord r;
          r.cell_id = id;
          r.image_index = i;
          r.sample_index = s;
          r.status = "ok";
          r.seconds = 1.5 + static_cast<double>(m);
          r.forwards = 25 * static_cast<int64_t>(m + 1);
          const double base = std::fmod(static_cast<double>(m * 7 + k * 3) * 0.37, 1.0);
          for (size_t q = 0; q < metrics.size(); ++q) {
            const double v = base + 0.05 * i + 0.02 * s + 0.11 * static_cast<double>(q);
            const double scale = metrics[q].first.rfind("psnr", 0) == 0 ? 20.0 : 1.0;
            r.scores.push_back({metrics[q].first, (metrics[q].second ? 10.0 : 0.0) + v * scale,
                                metrics[q].second});
          }
          rows.push_back(r);
        }
      }
      db.write_samples(rows);
    }
  }
  return path;
}

std::string report(const std::string& db, ReportOptions o) {
  std::ostringstream out;
  write_report(load_results({db}), o, out);
  return out.str();
}

/// Compares with tests/fixtures/report/NAME. COPAINT_UPDATE_GOLDEN=1 rewrites the file and fails
/// the test (so that the switch can never pass a run: rerun without it to check), and is refused
/// where CI is set.
void expect_golden(const std::string& text, const std::string& name) {
  const fs::path file = fs::path(COPAINT_TEST_FIXTURES_DIR) / "report" / name;
  if (std::getenv("COPAINT_UPDATE_GOLDEN")) {
    ASSERT_EQ(std::getenv("CI"), nullptr) << "COPAINT_UPDATE_GOLDEN is refused where CI is set";
    std::ofstream(file) << text;
    FAIL() << "rewrote " << file << " (COPAINT_UPDATE_GOLDEN=1): rerun without it to check";
  }
  std::ifstream in(file);
  ASSERT_TRUE(in) << "missing golden file " << file << " (COPAINT_UPDATE_GOLDEN=1 writes it)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(text, want.str()) << "differs from " << file
                              << " (COPAINT_UPDATE_GOLDEN=1 rewrites it)";
}

bool have_pdflatex() { return std::system("command -v pdflatex > /dev/null 2>&1") == 0; }

/// Compiles `tex` with pdflatex; returns "" when it compiled without overfull boxes, else why.
std::string compile(const std::string& tex, const fs::path& dir, const std::string& name) {
  std::ofstream(dir / (name + ".tex")) << tex;
  const std::string cmd = "cd '" + dir.string() +
                          "' && pdflatex -interaction=nonstopmode -halt-on-error " + name +
                          ".tex > " + name + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream log(dir / (name + ".log"));
  std::stringstream text;
  text << log.rdbuf();
  if (rc != 0) return "pdflatex failed:\n" + text.str();
  if (text.str().find("Overfull \\hbox") != std::string::npos) return "overfull:\n" + text.str();
  if (!fs::exists(dir / (name + ".pdf"))) return "no PDF";
  return "";
}

TEST(ReportLatex, GoldenPerMetricAndPaperLayouts) {
  const fs::path dir = temp_dir("golden");
  const std::string db = make_results(dir, {"half", "expand", "line", "sr2"}, 1);
  ReportOptions o;
  o.format = "latex";
  o.precision = 2;
  expect_golden(report(db, o), "per_metric.tex");
  o.layout = "paper";
  o.spread = "ci95";
  expect_golden(report(db, o), "paper_ci95.tex");
  o = ReportOptions{};
  o.precision = 3;
  expect_golden(report(db, o), "per_metric.md");
  fs::remove_all(dir);
}

TEST(ReportLatex, BestBoldSecondUnderlinedByDirectionAndNoBestOfOneSample) {
  const fs::path dir = temp_dir("bold");
  const std::string db = make_results(dir, {"half"}, 1);
  ReportOptions o;
  o.format = "latex";
  o.metrics = {"psnr", "known_mse"};
  const std::string tex = report(db, o);
  // psnr: higher is better; known_mse: lower. Exactly one bold and one underline per table.
  size_t bold = 0, under = 0;
  for (size_t at = tex.find("\\textbf{"); at != std::string::npos;
       at = tex.find("\\textbf{", at + 1))
    ++bold;
  for (size_t at = tex.find("\\underline{"); at != std::string::npos;
       at = tex.find("\\underline{", at + 1))
    ++under;
  EXPECT_EQ(bold, 2u) << tex;
  EXPECT_EQ(under, 2u) << tex;
  // No "(best)" with one sample per image: a row's cells hold no parenthesis.
  const size_t row = tex.find("\nCoPaint & ");
  ASSERT_NE(row, std::string::npos) << tex;
  const std::string line = tex.substr(row + 1, tex.find('\n', row + 1) - row - 1);
  EXPECT_EQ(line.find('('), std::string::npos) << line;
  EXPECT_EQ(tex.find("in parentheses"), std::string::npos) << tex;
  EXPECT_NE(tex.find("PSNR $\\uparrow$"), std::string::npos) << tex;
  EXPECT_NE(tex.find("MSE (known) $\\downarrow$"), std::string::npos) << tex;
  EXPECT_NE(tex.find("CoPaint-TT"), std::string::npos) << tex;
  EXPECT_EQ(tex.find("copaint\\_tt"), std::string::npos) << tex;
  EXPECT_EQ(tex.find("\xc2\xb1"), std::string::npos) << tex;  // no raw UTF-8 ±
  // Experiment order: psnr's table before known_mse's although known_mse was stored first.
  EXPECT_LT(tex.find("PSNR $\\uparrow$ on"), tex.find("MSE (known) $\\downarrow$ on")) << tex;
  // --metric is exact: psnr does not bring psnr_masked; lpips (not stored) selects lpips_alex.
  EXPECT_EQ(tex.find("PSNR (hole)"), std::string::npos) << tex;
  o.metrics = {"lpips"};
  EXPECT_NE(report(db, o).find("LPIPS $\\downarrow$"), std::string::npos);
  // Two samples per image: best-of-n appears.
  const fs::path dir2 = temp_dir("bold2");
  const std::string db2 = make_results(dir2, {"half"}, 2);
  o.spread = "std";
  const std::string two = report(db2, o);
  EXPECT_NE(two.find("{\\scriptsize $\\pm$ "), std::string::npos) << two;
  EXPECT_NE(two.find("in parentheses best of $n$"), std::string::npos) << two;
  fs::remove_all(dir);
  fs::remove_all(dir2);
}

TEST(ReportLatex, MetricOrderAndSelection) {
  const std::vector<std::string> stored = {"known_mse", "lpips_alex_v0.1", "psnr", "psnr_masked"};
  EXPECT_EQ(order_metrics(stored, {"psnr", "lpips", "psnr_masked"}),
            (std::vector<std::string>{"psnr", "lpips_alex_v0.1", "psnr_masked", "known_mse"}));
  EXPECT_TRUE(metric_selected("psnr", {"psnr"}, stored));
  EXPECT_FALSE(metric_selected("psnr_masked", {"psnr"}, stored));
  EXPECT_TRUE(metric_selected("lpips_alex_v0.1", {"lpips"}, stored));
  EXPECT_EQ(latex_escape("a_b \xc2\xb1 1%"), "a\\_b $\\pm$ 1\\%");
  EXPECT_EQ(method_display("copaint_tt"), "CoPaint-TT");
  EXPECT_EQ(metric_display("psnr_masked"), "PSNR (hole)");
}

// Compiles every layout with pdflatex as emitted (standalone) and as a fragment \input into a
// plain article with the packages the first line names; no overfull boxes: 7 masks x 5 metrics
// fit the page, 7 masks fit a two-column paper's column.
TEST(ReportLatex, CompilesWithPdflatex) {
  if (!have_pdflatex()) {
    GTEST_SKIP() << "pdflatex not installed (Debian: texlive-latex-recommended); not compiled";
  }
  const fs::path dir = temp_dir("pdflatex");
  const std::string db =
      make_results(dir, {"half", "expand", "line", "sr2", "narrow", "wide", "text"}, 2);
  ReportOptions o;
  o.format = "latex";
  o.standalone = true;
  o.timing = true;
  EXPECT_EQ(compile(report(db, o), dir, "metric"), "");
  o.layout = "paper";
  o.spread = "ci95";
  EXPECT_EQ(compile(report(db, o), dir, "paper"), "");
  o.pivot = "mask x method";
  o.layout = "metric";
  EXPECT_EQ(compile(report(db, o), dir, "pivot"), "");
  // A fragment in a two-column article with the packages the comment names.
  o = ReportOptions{};
  o.format = "latex";
  std::ofstream(dir / "fragment.tex") << report(db, o);
  EXPECT_EQ(compile("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                    "\\usepackage{graphicx}\n\\begin{document}\n\\input{fragment}\n"
                    "\\end{document}\n",
                    dir, "twocolumn"),
            "");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
