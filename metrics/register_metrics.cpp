// Adds the built-in metrics to Registry<Metric>: names, descriptions, options and factories.
#include "metrics/register_metrics.h"

#include "framework/core/registry.h"
#include "metrics/metric.h"

namespace copaint {
namespace {

std::vector<OptionSpec> lpips_option_specs() {
  return {OptionSpec{"backbone", "alex", "trunk: alex | vgg | squeeze"}.one_of(
              {"alex", "vgg", "squeeze"}),
          {"version", "0.1", "LPIPS version of the linear heads (only 0.1)"},
          {"weights", "",
           "folder with the heads <backbone>.pth and torchvision's trunk file "
           "(alexnet-owt-7be5be79.pth, vgg16-397923af.pth, squeezenet1_1-b8a52dc0.pth)"},
          {"heads", "", "explicit heads file (overrides weights/<backbone>.pth)"},
          {"trunk", "", "explicit torchvision trunk file (overrides the one in weights)"}};
}

LpipsOptions lpips_options(const Options& o) {
  LpipsOptions out;
  out.backbone = o.get("backbone", out.backbone);
  out.version = o.get("version", out.version);
  out.weights_dir = o.get("weights", "");
  out.heads_file = o.get("heads", "");
  out.trunk_file = o.get("trunk", "");
  return out;
}

}  // namespace

void register_builtin_metrics() {
  auto& r = Registry<Metric>::global();
  r.add({"psnr", "PSNR on images mapped to [0,1] (higher is better)", {}, [](const Options&) {
           return std::make_unique<PsnrMetric>();
         }});
  r.add({"ssim",
         "SSIM, 11x11 Gaussian window sigma 1.5, per channel (higher is better)",
         {},
         [](const Options&) { return std::make_unique<SsimMetric>(); }});
  r.add({"psnr_masked",
         "PSNR on the unknown (inpainted) region only (higher is better)",
         {},
         [](const Options&) { return std::make_unique<PsnrMaskedMetric>(); }});
  r.add({"known_mse",
         "MSE on known pixels in [-1,1] space: data consistency (lower is better)",
         {},
         [](const Options&) { return std::make_unique<KnownMseMetric>(); }});
  r.add({"lpips",
         "LPIPS v0.1 perceptual distance, reported as lpips_<backbone>_v0.1 (lower is "
         "better)",
         lpips_option_specs(), [](const Options& o) {
           return std::make_unique<LpipsMetric>(Lpips(lpips_options(o)), /*masked=*/false);
         }});
  r.add({"lpips_masked",
         "LPIPS v0.1 of the sample with the known region pasted from the reference: scores only "
         "the inpainted content (lower is better)",
         lpips_option_specs(), [](const Options& o) {
           return std::make_unique<LpipsMetric>(Lpips(lpips_options(o)), /*masked=*/true);
         }});
}

// MERGE(issue 31, branch i31b): temporary empty definition so that the harness links before
// branch i31a (FidMetric, KidMetric) is merged; i31a's definition replaces this one.
void register_builtin_set_metrics() {}

}  // namespace copaint
