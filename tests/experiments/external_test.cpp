// Methods outside this program: export-inputs writes a grid's inputs, a Python script writes
// predictions in the official CoPaint code's samples/ layout, `copaint score` stores them beside
// the built-in methods (missing and mis-sized files listed); import-config turns the reference's
// YAML into our INI; the minimal example method of methods/examples runs through `copaint run`.
#include "experiments/experiment/external.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <unistd.h>

#include <ATen/ATen.h>

#include "experiments/app/cli.h"
#include "experiments/experiment/experiment.h"
#include "experiments/experiment/runner.h"
#include "experiments/imageio/image_io.h"
#include "experiments/report/report.h"
#include "experiments/store/merge.h"
#include "framework/core/registry.h"
#include "methods/examples/example_method.h"
#include "tests/test_paths.h"

namespace copaint {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path d =
      fs::temp_directory_path() / ("copaint_external_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// Three 8x8 RGB images in DIR/images and an experiment over them on the analytic model.
std::string make_experiment(const fs::path& dir, const std::string& methods) {
  register_all();
  fs::create_directories(dir / "images");
  at::manual_seed(7);
  for (int i = 0; i < 3; ++i) {
    write_image((dir / "images" / ("img" + std::to_string(i) + ".png")).string(),
                at::rand({3, 8, 8}).mul(2).sub(1));
  }
  const std::string ini = (dir / "ext.ini").string();
  std::ofstream(ini) << "name = ext\nmodel = gaussian\ndataset = folder\nmethods = " << methods
                     << "\nmasks = half, line\nseeds = 0\nsamples = 1\nmetrics = psnr, "
                        "known_mse\nbatch_size = 0\n\n[gaussian]\nimage_size = 8\nstd = 0.6\n\n"
                        "[folder]\nroot = "
                     << (dir / "images").string()
                     << "\nsize = 8\npreprocess = none\n\n[blended]\nrespacing = 5\n"
                     << (methods.find("example") != std::string::npos
                             ? "\n[example]\nrespacing = 5\n"
                             : "");
  return ini;
}

std::string file_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(External, ExportInputsWritesTheReferenceLayoutAndAManifest) {
  const fs::path dir = temp_dir("export");
  const Experiment ex = load_experiment(make_experiment(dir, "blended"));
  EXPECT_EQ(export_inputs(ex, (dir / "in").string()), 6);  // 2 masks x 3 images
  const fs::path one = dir / "in" / "folder" / "half" / "img0";
  for (const char* f : {"gt.png", "mask.png", "masked.png"}) EXPECT_TRUE(fs::exists(one / f)) << f;
  EXPECT_TRUE(fs::is_directory(one / "samples"));
  // gt is the image, the mask 1 on the known (left) half, masked = image x mask.
  const at::Tensor gt = read_image((one / "gt.png").string(), 3);
  const at::Tensor mask = read_mask((one / "mask.png").string());
  const at::Tensor masked = read_image((one / "masked.png").string(), 3);
  EXPECT_EQ(mask.sum().item<double>(), 32.0);
  EXPECT_LE((masked - gt * mask).abs().max().item<double>(), 1.0 / 127.5 + 1e-6);
  const std::string csv = file_text(dir / "in" / "manifest.csv");
  EXPECT_NE(csv.find("folder,half,0,0,img0,0," + std::to_string(experiment_sample_seed(0, 0, 0)) +
                     ",folder/half/img0/gt.png,folder/half/img0/mask.png,"
                     "folder/half/img0/masked.png,folder/half/img0/samples/00000.png"),
            std::string::npos)
      << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);  // header + 6 rows
  const std::string json = file_text(dir / "in" / "manifest.json");
  EXPECT_NE(json.find("\"prediction\": \"folder/line/img2/samples/00000.png\""), std::string::npos)
      << json;
  fs::remove_all(dir);
}

TEST(External, ScoreStoresPredictionsBesideBuiltInMethodsAndListsBadOnes) {
  const fs::path dir = temp_dir("score");
  const std::string ini = make_experiment(dir, "blended");
  const Experiment ex = load_experiment(ini);
  RunOptions ro;
  ro.device = "cpu";
  ro.out_dir = (dir / "results").string();
  run_experiment(ex, ro);
  export_inputs(ex, (dir / "in").string());
  const fs::path pred = dir / "pred";
  const bool python = std::system("command -v python3 > /dev/null 2>&1") == 0;
  if (python) {
    // A Python method writing the official code's layout; row 0 left out, row 1 mis-sized.
    const std::string cmd = "python3 '" + std::string(COPAINT_TEST_FIXTURES_DIR) +
                            "/external/write_predictions.py' '" + (dir / "in").string() + "' '" +
                            pred.string() + "' --skip 0 --bad-size 1 > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    EXPECT_TRUE(fs::exists(pred / "folder" / "line" / "img0" / "gt.png"));
  } else {
    std::cout << "python3 not found: predictions written from C++ instead\n";
    for (const char* mask : {"half", "line"}) {
      for (int i = 0; i < 3; ++i) {
        const std::string rel = std::string("folder/") + mask + "/img" + std::to_string(i);
        if (rel == "folder/half/img0") continue;
        fs::create_directories(pred / rel / "samples");
        const at::Tensor m = read_image((dir / "in" / rel / "masked.png").string(), 3);
        write_image((pred / rel / "samples" / "00000.png").string(),
                    rel == "folder/half/img1" ? at::zeros({3, 4, 4}) : m);
      }
    }
  }
  std::ostringstream out, err;
  EXPECT_EQ(run_cli({"score", ini, "--predictions", pred.string(), "--as", "ext_py", "--set",
                     "note=masked input", "--out", ro.out_dir},
                    out, err),
            1)
      << err.str();
  EXPECT_NE(out.str().find("scored 4 predictions of ext_py"), std::string::npos) << out.str();
  EXPECT_NE(err.str().find("1 prediction(s) missing"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("folder/half/img0/samples/00000.png"), std::string::npos) << err.str();
  EXPECT_NE(err.str().find("img1/samples/00000.png: 3x4x4, expected 3x8x8"), std::string::npos)
      << err.str();

  // Reported beside blended; the masked input keeps the known pixels exactly.
  const ResultSet rs = load_results(find_result_dbs(ro.out_dir));
  std::ostringstream md;
  ReportOptions o;
  o.metrics = {"known_mse"};
  write_report(rs, o, md);
  // Its cells are promised the grid's images x samples: the half cell holds 1 of 3.
  EXPECT_NE(md.str().find("| ext_py | 0.0000 [1/3] | 0.0000 |"), std::string::npos) << md.str();
  const Completeness done = check_completeness(rs);
  ASSERT_EQ(done.short_cells.size(), 1u) << done.summary();
  EXPECT_EQ(done.short_cells[0], "ext_py / half / seed 0: 1 of 3 samples");
  EXPECT_NE(md.str().find("| blended |"), std::string::npos) << md.str();
  EXPECT_TRUE(check_completeness(rs).incomplete());
  {
    std::ostringstream rout, rerr;
    EXPECT_EQ(run_cli({"report", ro.out_dir, "--strict"}, rout, rerr), 1) << rerr.str();
    EXPECT_NE(rerr.str().find("ext_py / half / seed 0: 1 of 3 samples"), std::string::npos)
        << rerr.str();
  }
  bool settings = false;
  for (const auto& c : rs.cells)
    settings = settings || (c.method == "ext_py" && c.settings == "note = masked input\n");
  EXPECT_TRUE(settings);
  // Stored as `run` stores them: the run's reference and mask datasets (not copies under other
  // paths) and a cell row with the run's fields.
  std::set<std::string> run_paths, ext_paths;
  for (const auto& s : rs.samples) {
    if (s.status != "ok") continue;
    auto& paths = rs.cells[s.cell_id].method == "ext_py" ? ext_paths : run_paths;
    paths.insert(s.reference_path);
    paths.insert(s.mask_path);
  }
  EXPECT_FALSE(ext_paths.empty());
  for (const auto& p : ext_paths) EXPECT_EQ(run_paths.count(p), 1u) << p;
  // The grid draws them: reference, input, blended, ext_py for 2 images x 2 masks.
  GridOptions g;
  g.images = {1, 2};
  EXPECT_EQ(export_grid(rs, g, (dir / "grid.png").string()), 16);

  // Rescoring after fixing the files replaces nothing twice: all 6 stored, exit 0.
  fs::create_directories(pred / "folder" / "half" / "img0" / "samples");
  for (const char* rel : {"folder/half/img0", "folder/half/img1"}) {
    write_image((pred / rel / "samples" / "00000.png").string(),
                read_image((dir / "in" / rel / "masked.png").string(), 3));
  }
  EXPECT_EQ(run_cli({"score", ini, "--predictions", pred.string(), "--as", "ext_py", "--set",
                     "note=masked input", "--out", ro.out_dir},
                    out, err),
            0)
      << err.str();
  const ResultSet again = load_results(find_result_dbs(ro.out_dir));
  EXPECT_FALSE(check_completeness(again).incomplete()) << check_completeness(again).summary();
  int64_t ext = 0;
  for (const auto& s : again.samples) ext += again.cells[s.cell_id].method == "ext_py";
  EXPECT_EQ(ext, 6);
  EXPECT_EQ(
      run_cli({"score", ini, "--predictions", (dir / "none").string(), "--as", "x"}, out, err), 1);
  // A built-in method's name would pass the predictions off as that method's results.
  for (const char* builtin : {"blended", "copaint"}) {
    std::ostringstream bout, berr;
    EXPECT_EQ(run_cli({"score", ini, "--predictions", pred.string(), "--as", builtin, "--out",
                       ro.out_dir},
                      bout, berr),
              2)
        << berr.str();
    EXPECT_NE(berr.str().find("built-in method's name"), std::string::npos) << berr.str();
  }
  const ResultSet after = load_results(find_result_dbs(ro.out_dir));
  int64_t blended_rows = 0;
  for (const auto& s : after.samples) blended_rows += after.cells[s.cell_id].method == "blended";
  EXPECT_EQ(blended_rows, 6);
  fs::remove_all(dir);
}

// A config in the reference's YAML layout (keys as configs/celebahq.yaml) with the overrides
// scripts/copaint-tt.sh passes.
const char* kReferenceYaml = R"YAML(# reference config
model_path: ./checkpoints/celeba256_250000.pt
dataset_name: celebahq
dataset_starting_index: -1
dataset_ending_index: 10
mask_type: half
seed: 42
n_samples: 10
n_iter: 1
outdir: ./images/celeba-hq
algorithm: o_ddim
mode: inpaint
ddim:
  ddim_sigma: 0.0
  schedule_params:
    num_inference_steps: 250
    ddpm_num_steps: 250
    schedule_type: linear
    jump_length: 1
    jump_n_sample: 1
    use_timetravel: false
    time_travel_filter_type: none
optimize_xt:
  optimize_xt: true
  num_iteration_optimize_xt: 2
  lr_xt: 0.02
  lr_xt_decay: 1.012
  use_smart_lr_xt_decay: true
  use_adaptive_lr_xt: true
  coef_xt_reg: 0.0001
  coef_xt_reg_decay: 1.01
  mid_interval_num: 1
  optimize_before_time_travel: true
repaint:
  schedule_jump_params:
    t_T: 250
    jump_length: 10
    jump_n_sample: 10
timestep_respacing: '250'
num_channels: 256
)YAML";

TEST(External, ImportConfigMapsTheReferenceKeys) {
  const std::string ini = import_reference_config(
      kReferenceYaml,
      {"n_samples=2", "mask_type=expand", "ddim.schedule_params.jump_length=10",
       "ddim.schedule_params.jump_n_sample=2", "ddim.schedule_params.use_timetravel"});
  for (const char* want :
       {"model = celebahq256", "dataset = celebahq", "methods = copaint_tt", "masks = expand",
        "seeds = 42", "samples = 2", "checkpoint = ./checkpoints/celeba256_250000.pt", "count = 10",
        "[copaint_tt]", "respacing = 250", "G = 2", "lr_xt = 0.02", "lr_xt_decay = 1.012",
        "coef_xt_reg = 0.0001", "jump_length = 10", "jump_n_sample = 2"}) {
    EXPECT_NE(ini.find(want), std::string::npos) << want << "\n" << ini;
  }
  EXPECT_EQ(ini.find("steps = 250"), std::string::npos) << ini;  // = the respacing: left out
  // It is a valid experiment of ours (paths aside).
  register_all();
  const Experiment ex = parse_experiment(ini, "imported.ini");
  EXPECT_EQ(ex.cells.size(), 1u);
  EXPECT_EQ(ex.cells[0].method_settings.get("jump_n_sample"), "2");
  // CoPaint-Fast as scripts/copaint-fast.sh runs it; RePaint's schedule keys.
  const std::string fast = import_reference_config(
      kReferenceYaml, {"ddim.schedule_params.num_inference_steps=100",
                       "optimize_xt.num_iteration_optimize_xt=1", "optimize_xt.lr_xt_decay=1.03"});
  EXPECT_NE(fast.find("steps = 100"), std::string::npos) << fast;
  EXPECT_NE(fast.find("methods = copaint\n"), std::string::npos) << fast;
  const std::string repaint = import_reference_config(kReferenceYaml, {"algorithm=repaint"});
  EXPECT_NE(repaint.find("[repaint]\nrespacing = 250\nt_T = 250\njump_length = 10"),
            std::string::npos)
      << repaint;
  EXPECT_THROW(import_reference_config(kReferenceYaml, {"no.such.key=1"}), UsageError);
  // Through the CLI, with the reference's own flag syntax after --.
  const fs::path dir = temp_dir("import");
  std::ofstream(dir / "celebahq.yaml") << kReferenceYaml;
  std::ostringstream out, err;
  ASSERT_EQ(run_cli({"import-config", (dir / "celebahq.yaml").string(), "--", "--algorithm",
                     "o_ddim", "--ddim.schedule_params.use_timetravel", "--mask_type", "line"},
                    out, err),
            0)
      << err.str();
  EXPECT_NE(out.str().find("methods = copaint_tt"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("masks = line"), std::string::npos) << out.str();
  fs::remove_all(dir);
}

TEST(ExampleMethod, RunsThroughTheRunnerAndKeepsTheKnownPixels) {
  register_all();
  register_example_method(Registry<Method>::global());
  const fs::path dir = temp_dir("example");
  const Experiment ex = load_experiment(make_experiment(dir, "example"));
  RunOptions ro;
  ro.device = "cpu";
  ro.out_dir = (dir / "results").string();
  const RunSummary s = run_experiment(ex, ro);
  EXPECT_EQ(s.ok, 6);  // 2 masks x 3 images
  EXPECT_EQ(s.errors, 0);
  const ResultSet rs = load_results(find_result_dbs(ro.out_dir));
  for (const auto& sample : rs.samples) {
    if (rs.cells[sample.cell_id].method != "example") continue;
    EXPECT_EQ(sample.forwards, 5);  // one per respaced step
    for (const auto& sc : sample.scores) {
      if (sc.metric == "known_mse") EXPECT_LT(sc.value, 1e-4);
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace copaint
