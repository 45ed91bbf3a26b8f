// The datasets and attributes of one stored sample of a cell.
#include "experiments/experiment/sample_images.h"

#include "experiments/experiment/runner.h"
#include "experiments/store/results_json.h"
#include "framework/core/input_hash.h"

namespace copaint {

namespace {

/// Whether the input dataset at `path` must be (re)written: absent or unreadable, or holding
/// other pixels than `sha256` names (the input changed under the same index; "" = not checked).
bool stale_input(const ResultsH5& h5, const std::string& path, const std::string& sha256,
                 bool is_mask) {
  if (!h5.readable(path)) return true;
  if (sha256.empty()) return false;
  return (is_mask ? mask_sha256(h5.read_mask(path)) : uint8_sha256(h5.read_uint8(path))) != sha256;
}

}  // namespace

void store_sample_images(ResultsH5& h5, const ExperimentCell& cell, const SampleRecord& r,
                         const at::Tensor& reference, const at::Tensor& mask,
                         const at::Tensor& sample, int64_t generator_seed, bool float_sample) {
  const std::string layout = "uint8 [H,W,C], round((x + 1) * 127.5) of [-1,1]";
  if (stale_input(h5, r.reference_path, r.image_sha256, false)) {
    h5.write_image(r.reference_path, reference);
    h5.set_attributes(
        r.reference_path,
        {{"kind", "reference"},
         {"dataset", cell.dataset},
         {"dataset_settings", settings_text_to_json(cell.dataset_settings.canonical())},
         {"image_id", r.image_id},
         {"sha256", image_sha256(reference)},
         {"layout", layout}},
        {{"image_index", r.image_index}});
  }
  if (stale_input(h5, r.mask_path, r.mask_sha256, true)) {
    h5.write_mask(r.mask_path, mask);
    h5.set_attributes(r.mask_path,
                      {{"kind", "mask"},
                       {"mask", cell.mask},
                       {"mask_settings", settings_text_to_json(cell.mask_settings.canonical())},
                       {"sha256", mask_sha256(mask)},
                       {"layout", "uint8 [H,W,1], 1 = known pixel, 0 = unknown"}},
                      {{"image_index", r.image_index}, {"mask_seed", cell.mask_seed}});
  }
  h5.write_image(r.sample_path, sample);
  std::map<std::string, std::string> text = {
      {"kind", "sample"},
      {"cell_key", cell.key()},
      {"method", cell.method},
      {"variant", variant_label_to_json(cell.axes_label())},
      {"settings", settings_text_to_json(cell.method_settings.canonical())},
      {"dataset", cell.dataset},
      {"mask", cell.mask},
      {"model", cell.model},
      {"image_id", r.image_id},
      {"reference", r.reference_path},
      {"mask_path", r.mask_path},
      {"layout", layout}};
  if (float_sample) {
    text["float_path"] = float_sample_path(r.sample_path);
    h5.write_float(text["float_path"], sample);
    h5.set_attributes(text["float_path"],
                      {{"kind", "sample_float"},
                       {"cell_key", cell.key()},
                       {"layout", "float32 [H,W,C] in [-1,1]: the method's output as scored"}},
                      {{"image_index", r.image_index}, {"sample_index", r.sample_index}});
  }
  std::map<std::string, int64_t> integers = {
      {"image_index", r.image_index}, {"sample_index", r.sample_index}, {"seed", cell.seed}};
  if (generator_seed >= 0) integers["generator_seed"] = generator_seed;
  h5.set_attributes(r.sample_path, text, integers);
  describe_groups(h5, cell_record(cell), r);
}

}  // namespace copaint
