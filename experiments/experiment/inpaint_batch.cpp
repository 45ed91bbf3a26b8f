// One batch of inpainting problems: generators, initial noise, labels, timing.
#include "experiments/experiment/inpaint_batch.h"

#include <chrono>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "framework/core/error.h"
#include "methods/sampling.h"

namespace copaint {

uint64_t inpaint_sample_seed(uint64_t seed, int64_t index) {
  return seed * 1000003ULL + static_cast<uint64_t>(index);
}

InpaintBatchResult run_inpaint_batch(Method& method, Denoiser& model, const InpaintBatch& batch,
                                     const c10::Device& device) {
  const int64_t b = batch.images.size(0);
  if (static_cast<int64_t>(batch.seeds.size()) != b) {
    throw UsageError("run_inpaint_batch: " + std::to_string(batch.seeds.size()) + " seeds for " +
                     std::to_string(b) + " images");
  }
  InpaintInput in;
  for (uint64_t s : batch.seeds)
    in.generators.push_back(at::make_generator<at::CPUGeneratorImpl>(s));
  in.image = batch.images.to(device, at::kFloat).contiguous();
  in.mask = batch.masks.to(device, at::kFloat);
  if (batch.labels.defined()) in.y = batch.labels.to(device, at::kLong);
  // Drawn here exactly as the method would (per_sample_randn), so that it can be returned.
  if (batch.x_T.defined()) {
    in.x_T = batch.x_T.to(device, at::kFloat);
  } else if (batch.draw_x_T) {
    in.x_T = per_sample_randn(in.image, in.generators);
  }
  in.on_step = batch.on_step;
  const auto start = std::chrono::steady_clock::now();
  InpaintOutput out = method.run(model, in);
  InpaintBatchResult result;
  result.samples = out.sample.detach().to(at::kCPU, at::kFloat);  // waits for the device
  // Samplers that ran under InferenceMode return inference tensors, which may not be changed in
  // place or enter autograd later: the caller gets a normal tensor.
  if (result.samples.is_inference()) result.samples = result.samples.clone();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (in.x_T.defined()) result.x_T = in.x_T.to(at::kCPU, at::kFloat);
  result.evals = out.evals;
  if (out.evals.nonfinite_grads.defined())  // read with the samples, once per batch
    result.evals.nonfinite_grads = out.evals.nonfinite_grads.to(at::kCPU, at::kLong);
  return result;
}

void check_class_label(const Denoiser& model, int64_t label, const std::string& what) {
  if (model.num_classes() > 0 && (label < 0 || label >= model.num_classes())) {
    throw UsageError(what + ": the model is class-conditional: it needs a class label in [0, " +
                     std::to_string(model.num_classes()) + ")" +
                     (label < 0 ? std::string(", got none") : ", got " + std::to_string(label)));
  }
  if (model.num_classes() == 0 && label >= 0) {
    throw UsageError(what + ": the model is not class-conditional; it takes no class label");
  }
}

}  // namespace copaint
