// Tests of the result stores and reports: HDF5 round trips, the SQLite schema's upsert, NaN
// handling and views, and report tables checked against hand-computed aggregates.
#include "experiments/report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include <unistd.h>

#include <ATen/ATen.h>

#include "experiments/imageio/image_io.h"
#include "experiments/store/results_db.h"
#include "experiments/store/results_h5.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_results_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(ResultsH5, ImagesMasksAndRawBytesRoundTrip) {
  const fs::path dir = temp_dir("h5");
  const std::string path = (dir / "r.h5").string();
  const at::Tensor image = at::rand({3, 5, 7}).mul(2.2).sub(1.1);  // some values clamp
  const at::Tensor mask = at::rand({1, 5, 7}).gt(0.5).to(at::kFloat);
  {
    ResultsH5 h5(path, ResultsH5::Mode::kWrite);
    h5.write_image("/samples/abc/0_1", image);
    h5.write_mask("/masks/half-1/0", mask);
    // A mask as versions before 0/1 stored it (255 = known) reads the same.
    h5.write_uint8("/masks/old/0",
                   mask.gt(0.5).to(at::kByte).mul(255).permute({1, 2, 0}).contiguous());
    h5.flush();
  }
  {
    ResultsH5 h5(path, ResultsH5::Mode::kRead);
    EXPECT_TRUE(h5.contains("/samples/abc/0_1"));
    EXPECT_FALSE(h5.contains("/samples/abc/0_2"));
    EXPECT_FALSE(h5.contains("/nothing/here"));
    const at::Tensor u8 = h5.read_uint8("/samples/abc/0_1");
    EXPECT_EQ(u8.sizes(), (std::vector<int64_t>{5, 7, 3}));
    EXPECT_TRUE(at::equal(u8, image_to_uint8(image)));
    const at::Tensor back = h5.read_image("/samples/abc/0_1");
    EXPECT_LE((back - image.clamp(-1, 1)).abs().max().item<double>(), 0.5 / 127.5 + 1e-6);
    EXPECT_TRUE(at::equal(h5.read_mask("/masks/half-1/0"), mask));
    EXPECT_EQ(h5.read_uint8("/masks/half-1/0").max().item<int>(), 1);  // 0/1
    EXPECT_TRUE(at::equal(h5.read_mask("/masks/old/0"), mask));
    EXPECT_THROW(h5.read_uint8("/samples/abc/9_9"), InputError);
  }
  {
    // Rewriting replaces (same shape in place, another shape recreated); copies between files.
    ResultsH5 h5(path, ResultsH5::Mode::kWrite);
    h5.write_image("/samples/abc/0_1", at::zeros({3, 5, 7}));
    EXPECT_EQ(h5.read_uint8("/samples/abc/0_1").to(at::kInt).sum().item<int>(), 128 * 105);
    h5.write_image("/samples/abc/0_1", at::ones({1, 4, 4}));
    EXPECT_EQ(h5.read_uint8("/samples/abc/0_1").sizes(), (std::vector<int64_t>{4, 4, 1}));
    ResultsH5 other((dir / "o.h5").string(), ResultsH5::Mode::kWrite);
    other.copy_from(h5, "/masks/half-1/0");
    EXPECT_TRUE(at::equal(other.read_mask("/masks/half-1/0"), mask));
  }
  EXPECT_THROW(ResultsH5((dir / "missing.h5").string(), ResultsH5::Mode::kRead), InputError);
  fs::remove_all(dir);
}

/// Adds a cell with its samples: scores[image][sample] of one metric.
int64_t add_cell(ResultsDb& db, int64_t position, const std::string& method,
                 const std::string& settings, const std::string& mask,
                 const std::vector<std::vector<double>>& scores, const std::string& metric,
                 bool higher, int64_t errors = 0, const std::string& model_settings = "") {
  CellRecord c;
  c.key = method + settings + mask + model_settings;
  c.position = position;
  c.method = method;
  c.settings = settings;
  c.settings_hash = "h" + settings;
  c.dataset = "ds";
  c.mask = mask;
  c.model = "m";
  c.model_settings = model_settings;
  const int64_t id = db.ensure_cell(c);
  std::vector<SampleRecord> rows;
  for (size_t i = 0; i < scores.size(); ++i) {
    for (size_t s = 0; s < scores[i].size(); ++s) {
      SampleRecord r;
      r.cell_id = id;
      r.image_index = static_cast<int64_t>(i);
      r.sample_index = static_cast<int64_t>(s);
      r.status = "ok";
      r.seconds = 2.0;
      r.forwards = 10;
      r.scores.push_back({metric, scores[i][s], higher});
      rows.push_back(r);
    }
  }
  for (int64_t e = 0; e < errors; ++e) {
    SampleRecord r;
    r.cell_id = id;
    r.image_index = 100 + e;
    r.status = "error";
    r.error = "boom";
    rows.push_back(r);
  }
  db.write_samples(rows);
  return id;
}

TEST(ResultsDb, UpsertReplacesRowsAndScoresAndKeepsNan) {
  const fs::path dir = temp_dir("db");
  ResultsDb db((dir / "r.sqlite").string(), true);
  const int64_t id = add_cell(db, 0, "blended", "x = 1\n", "half", {{1.0, 2.0}}, "psnr", true);
  EXPECT_EQ(db.ensure_cell({0, "blendedx = 1\nhalf"}), id);  // same key, same cell
  SampleRecord r;
  r.cell_id = id;
  r.image_index = 0;
  r.sample_index = 1;
  r.status = "ok";
  r.scores = {{"psnr", NAN, true}, {"ssim", 0.5, true}};
  db.write_samples({r});
  const auto samples = db.samples();
  ASSERT_EQ(samples.size(), 2u);
  ASSERT_EQ(samples[1].scores.size(), 2u);
  EXPECT_TRUE(std::isnan(samples[1].scores[0].value));
  EXPECT_DOUBLE_EQ(samples[1].scores[1].value, 0.5);
  const auto status = db.sample_status(id);
  EXPECT_EQ(status.size(), 2u);
  EXPECT_EQ(status.at({0, 1}), "ok");
  // A bad status violates the schema and rolls the transaction back.
  r.sample_index = 5;
  r.status = "maybe";
  EXPECT_THROW(db.write_samples({r}), InputError);
  EXPECT_EQ(db.samples().size(), 2u);
  EXPECT_THROW(ResultsDb((dir / "none.sqlite").string(), false), InputError);
  fs::remove_all(dir);
}

TEST(Report, TablesMatchHandComputedAggregates) {
  const fs::path dir = temp_dir("report");
  const std::string path = (dir / "results.sqlite").string();
  {
    ResultsDb db(path, true);
    RunRecord run;
    run.name = "hand";
    run.config = "x";
    run.config_hash = "0";
    db.add_run(run);
    // blended, half: image 0 -> 10, 14; image 1 -> 20, 12: mean 14, best-of-2 (14 + 20) / 2 = 17.
    add_cell(db, 0, "blended", "respacing = 10\n", "half", {{10, 14}, {20, 12}}, "psnr", true, 1);
    // lower is better: image 0 -> 0.1, 0.3; image 1 -> 0.2, 0.4: mean 0.25, best (0.1+0.2)/2.
    add_cell(db, 1, "blended", "respacing = 10\n", "line", {{0.1, 0.3}, {0.2, 0.4}}, "known_mse",
             false);
    add_cell(db, 2, "copaint", "G = 1\nlr = 2\n", "half", {{5, 7}}, "psnr", true);
    add_cell(db, 3, "copaint", "G = 3\nlr = 2\n", "half", {{9, 8}}, "psnr", true);
  }
  const ResultSet rs = load_results({path});
  const auto variants = result_variants(rs);
  ASSERT_EQ(variants.size(), 3u);
  EXPECT_EQ(variants[0].label, "blended");
  EXPECT_EQ(variants[1].label, "copaint (G=1)");
  EXPECT_EQ(variants[2].label, "copaint (G=3)");

  std::ostringstream md;
  write_report(rs, ReportOptions{}, md);
  const std::string m = md.str();
  EXPECT_NE(m.find("| blended | 14.0000 (17.0000) [1 err] | - |"), std::string::npos) << m;
  EXPECT_NE(m.find("| blended | error | 0.2500 (0.1500) |"), std::string::npos) << m;
  EXPECT_NE(m.find("| copaint (G=1) | 6.0000 (7.0000) | - |"), std::string::npos) << m;
  EXPECT_NE(m.find("ablation of copaint over G: psnr"), std::string::npos) << m;
  EXPECT_NE(m.find("| 3 | 8.5000 (9.0000) | - | 2.000 | 10.0 |"), std::string::npos) << m;

  ReportOptions o;
  o.std = true;
  o.precision = 2;
  o.metrics = {"psnr"};
  o.timing = true;
  std::ostringstream sd;
  write_report(rs, o, sd);
  // std of 10, 14, 20, 12 = sqrt(((-4)^2 + 0 + 6^2 + (-2)^2) / 3) = 4.32.
  EXPECT_NE(sd.str().find("14.00 ± 4.32 (17.00)"), std::string::npos) << sd.str();
  EXPECT_EQ(sd.str().find("known_mse"), std::string::npos);
  // Peak memory 0 is "not measured" (a CPU run): "-", not 0.0.
  EXPECT_NE(sd.str().find("| blended | 8 | 1 | 2.000 | 10.0 | 0.0 | - |"), std::string::npos)
      << sd.str();

  o = ReportOptions{};
  o.format = "csv";
  std::ostringstream csv;
  write_report(rs, o, csv);
  EXPECT_NE(csv.str().find("ds,m,psnr,1,blended,blended,,half,4,2,1,14.0000000000,4.3204937989,"
                           "17.0000000000,2.000000,10.00,0.00"),
            std::string::npos)
      << csv.str();
  EXPECT_NE(csv.str().find("ds,m,psnr,1,copaint,copaint (G=3),G=3,half,2,1,0,8.5000000000"),
            std::string::npos)
      << csv.str();

  o.format = "latex";
  std::ostringstream tex;
  write_report(rs, o, tex);
  EXPECT_NE(tex.str().find("Blended & \\textbf{14.0000} (17.0000) [1 err] & - \\\\"),
            std::string::npos)
      << tex.str();
  fs::remove_all(dir);
}

// Runs of one model with different model settings (fp32 and bf16 results reported together) are
// separate sections labelled by the setting that differs, never pooled.
TEST(Report, ModelSettingsThatDifferAreSeparateSections) {
  const fs::path dir = temp_dir("report_models");
  const std::string path = (dir / "results.sqlite").string();
  {
    ResultsDb db(path, true);
    RunRecord run;
    run.name = "precisions";
    run.config = "x";
    run.config_hash = "0";
    db.add_run(run);
    add_cell(db, 0, "blended", "respacing = 10\n", "half", {{10}}, "psnr", true, 0,
             "checkpoint = a.pt\nprecision = fp32\n");
    add_cell(db, 1, "blended", "respacing = 10\n", "half", {{20}}, "psnr", true, 0,
             "checkpoint = a.pt\nprecision = bf16\n");
  }
  const ResultSet rs = load_results({path});
  const ResultLayout layout = result_layout(rs);
  ASSERT_EQ(layout.sections.size(), 2u);
  EXPECT_EQ(layout.sections[0].second, "m (precision=fp32)");
  EXPECT_EQ(layout.sections[1].second, "m (precision=bf16)");
  EXPECT_EQ(layout.section_of(rs.cells[1]), 1u);
  std::ostringstream md;
  write_report(rs, ReportOptions{}, md);
  EXPECT_NE(md.str().find("model m (precision=bf16)"), std::string::npos) << md.str();
  // One sample per image: no best-of-n part.
  EXPECT_NE(md.str().find("| blended | 20.0000 |"), std::string::npos) << md.str();
  EXPECT_EQ(md.str().find("15.0000"), std::string::npos) << md.str();  // not pooled
  fs::remove_all(dir);
}

TEST(Report, ExportSampleWritesTheStoredImage) {
  const fs::path dir = temp_dir("export");
  const at::Tensor image = at::rand({3, 6, 6}).mul(2).sub(1);
  {
    ResultsH5 h5((dir / "results.h5").string(), ResultsH5::Mode::kWrite);
    h5.write_image("/samples/k/0_0", image);
  }
  ResultsDb db((dir / "results.sqlite").string(), true);
  const int64_t cell = add_cell(db, 0, "blended", "", "half", {}, "psnr", true);
  SampleRecord r;
  r.cell_id = cell;
  r.status = "ok";
  r.h5_file = "results.h5";
  r.sample_path = "/samples/k/0_0";
  db.write_samples({r});
  const std::string png = (dir / "x.png").string();
  export_sample((dir / "results.sqlite").string(), 1, png);
  EXPECT_TRUE(at::equal(image_to_uint8(read_image(png, 3)), image_to_uint8(image)));
  EXPECT_THROW(export_sample((dir / "results.sqlite").string(), 7, png), InputError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
