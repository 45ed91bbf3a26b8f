// The attributes of the groups a stored sample sits in, and where its float copy goes.
#include "experiments/store/stored_images.h"

#include "experiments/store/results_json.h"

namespace copaint {

namespace {

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

}  // namespace

void describe_groups(ResultsH5& h5, const CellRecord& c, const SampleRecord& r) {
  h5.set_attributes("/", {{"format", "copaint-bench results"},
                          {"layout",
                           "/references/<dataset key>/<image>, /masks/<mask key>/<image>, "
                           "/samples/<cell key>/<image>_<sample> (uint8 [H,W,C]; masks "
                           "[H,W,1], 1 = known), /samples_float/... (float32, with run "
                           "--float-samples); see results/README.md"}});
  h5.set_attributes(parent_of(r.sample_path),
                    {{"kind", "cell"},
                     {"cell_key", c.key},
                     {"method", c.method},
                     {"variant", variant_label_to_json(c.axes)},
                     {"settings", settings_text_to_json(c.settings)},
                     {"dataset", c.dataset},
                     {"mask", c.mask},
                     {"model", c.model}},
                    {{"seed", c.seed}, {"position", c.position}});
  if (!r.reference_path.empty()) {
    h5.set_attributes(parent_of(r.reference_path),
                      {{"kind", "references"},
                       {"dataset", c.dataset},
                       {"dataset_settings", settings_text_to_json(c.dataset_settings)}});
  }
  if (!r.mask_path.empty()) {
    h5.set_attributes(parent_of(r.mask_path),
                      {{"kind", "masks"},
                       {"mask", c.mask},
                       {"mask_settings", settings_text_to_json(c.mask_settings)}},
                      {{"mask_seed", c.mask_seed}});
  }
}

std::string float_sample_path(const std::string& sample_path) {
  const std::string prefix = "/samples/";
  if (sample_path.rfind(prefix, 0) != 0) return sample_path + "_float";
  return "/samples_float/" + sample_path.substr(prefix.size());
}

}  // namespace copaint
