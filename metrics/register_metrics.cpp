// Adds the built-in metrics to Registry<Metric> (per sample) and Registry<SetMetric> (fid, kid):
// names, descriptions, options and factories.
#include "metrics/register_metrics.h"

#include "framework/core/registry.h"
#include "metrics/fid.h"
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

OptionSpec inception_weights_spec() {
  return {"weights", "",
          "pytorch-fid's Inception weights file pt_inception-2015-12-05-6726825d.pth (from " +
              std::string(kFidInceptionWeightsUrl) + ")"};
}

SharedInception inception_of(const Options& o) {
  return load_shared_inception(o.get("weights", ""));  // UsageError with the URL when empty
}

std::vector<OptionSpec> kid_option_specs() {
  const KidParams d;
  return {inception_weights_spec(),
          OptionSpec{"subset_size", std::to_string(d.subset_size),
                     "samples per KID subset, capped at the smaller set (torch-fidelity: 1000, "
                     "more than a 100-image cell has)"}
              .integer()
              .at_least(2),
          OptionSpec{"subsets", std::to_string(d.subsets), "number of KID subsets"}
              .integer()
              .at_least(1)
              .confirm_above(10000),
          OptionSpec{"seed", std::to_string(d.seed),
                     "seed of the subset draws (numpy RandomState, as torch-fidelity's rng_seed)"}
              .integer()
              .at_least(0)
              .at_most(4294967295.0)};
}

KidParams kid_params(const Options& o) {
  KidParams p;
  p.subset_size = o.get_int("subset_size");
  p.subsets = o.get_int("subsets");
  p.seed = static_cast<uint32_t>(o.get_int("seed"));
  return p;
}

}  // namespace

void register_builtin_set_metrics() {
  auto& r = Registry<SetMetric>::global();
  r.add({"fid",
         "FID of a cell's samples against its reference images, pool3 of pytorch-fid's Inception "
         "(lower is better; biased upwards below 2048 images)",
         {inception_weights_spec()},
         [](const Options& o) { return std::make_unique<FidMetric>(inception_of(o)); }});
  r.add({"kid",
         "KID (torch-fidelity's cubic-kernel unbiased MMD^2, mean and std over subsets) of a "
         "cell's samples against its reference images (lower is better)",
         kid_option_specs(), [](const Options& o) {
           return std::make_unique<KidMetric>(inception_of(o), kid_params(o));
         }});
}

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

}  // namespace copaint
