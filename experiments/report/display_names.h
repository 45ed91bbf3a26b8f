// Names for papers: the display names of methods, metrics, masks and datasets (CoPaint-TT,
// "PSNR (hole)", Half, CelebA-HQ), LaTeX escaping, and the order and selection of metrics
// (the experiment's `metrics` order; `--metric` matching a stored name exactly).
#pragma once

#include <string>
#include <vector>

#include "experiments/store/results_db.h"

namespace copaint {

/// "CoPaint-TT" for copaint_tt, "RePaint" for repaint, ...; an unknown name is returned as is.
std::string method_display(const std::string& method);
/// "PSNR", "PSNR (hole)", "SSIM", "LPIPS", "MSE (known)"; an unknown name is returned as is.
std::string metric_display(const std::string& metric);
/// "Half", "Expand", "Altern" (line), "S.R." (sr2), ... as the paper's Table 1.
std::string mask_display(const std::string& mask);
/// "CelebA-HQ", "ImageNet", "Fashion-MNIST"; an unknown name is returned as is.
std::string dataset_display(const std::string& dataset);

/// Escapes LaTeX's special characters (_ & % # $ { } ~ ^ \); UTF-8 "±" becomes $\pm$.
std::string latex_escape(const std::string& text);
/// The metric's display name with its direction: "PSNR (hole) $\uparrow$", "LPIPS $\downarrow$".
std::string metric_latex(const std::string& metric, bool higher_is_better);

/// The `metrics` list of the runs' resolved configurations, in order (first run that has one).
std::vector<std::string> configured_metrics(const std::vector<RunRecord>& runs);
/// `stored` (in order of appearance) reordered as `configured`: a stored name takes the position
/// of the configured name it equals or extends (`lpips` -> lpips_alex_v0.1); the others follow in
/// their order of appearance.
std::vector<std::string> order_metrics(const std::vector<std::string>& stored,
                                       const std::vector<std::string>& configured);
/// Whether `name` is selected by `wanted` (empty = all): a wanted entry equal to a stored name
/// selects only that name (`psnr` does not select psnr_masked); one that is not stored selects
/// the stored names that extend it by "_..." (`lpips` selects lpips_alex_v0.1).
bool metric_selected(const std::string& name, const std::vector<std::string>& wanted,
                     const std::vector<std::string>& stored);

}  // namespace copaint
