// The datasets and attributes of one stored sample of a cell.
#include "experiments/experiment/sample_images.h"

#include "experiments/experiment/runner.h"
#include "experiments/store/results_json.h"

namespace copaint {

void store_sample_images(ResultsH5& h5, const ExperimentCell& cell, const SampleRecord& r,
                         const at::Tensor& reference, const at::Tensor& mask,
                         const at::Tensor& sample, int64_t generator_seed, bool float_sample) {
  const std::string layout = "uint8 [H,W,C], round((x + 1) * 127.5) of [-1,1]";
  if (!h5.readable(r.reference_path)) {
    h5.write_image(r.reference_path, reference);
    h5.set_attributes(
        r.reference_path,
        {{"kind", "reference"},
         {"dataset", cell.dataset},
         {"dataset_settings", settings_text_to_json(cell.dataset_settings.canonical())},
         {"image_id", r.image_id},
         {"layout", layout}},
        {{"image_index", r.image_index}});
  }
  if (!h5.readable(r.mask_path)) {
    h5.write_mask(r.mask_path, mask);
    h5.set_attributes(r.mask_path,
                      {{"kind", "mask"},
                       {"mask", cell.mask},
                       {"mask_settings", settings_text_to_json(cell.mask_settings.canonical())},
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
