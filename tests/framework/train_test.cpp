// Tests of DDPM training: the loss falls on a simple distribution, state round trips, and the
// exported .pt loads back through the project's own reader.
#include "framework/train/train.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "framework/checkpoint/checkpoint.h"
#include "framework/core/error.h"

namespace copaint {
namespace {

UNetConfig small_config() {
  UNetConfig c;
  c.image_size = 8;
  c.num_channels = 32;
  c.channel_mult = "1,2";
  c.num_res_blocks = 1;
  c.attention_resolutions = "4";
  c.num_head_channels = 8;
  c.learn_sigma = false;
  return c;
}

at::Tensor batch(at::Generator& gen, int64_t n) {
  // Two-mode data: images that are all +0.8 or all -0.8.
  const at::Tensor sign =
      at::randint(2, {n, 1, 1, 1}, gen, at::TensorOptions().dtype(at::kFloat)) * 2 - 1;
  return (sign * 0.8).expand({n, 3, 8, 8}).contiguous();
}

TEST(Train, LossFallsAndStateRoundTrips) {
  at::manual_seed(0);
  UNet unet(small_config());
  TrainParams p;
  p.lr = 1e-3;
  p.batch_size = 8;
  DiffusionTrainer trainer(unet, p, DiffusionSchedule::linear(1000));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  auto eval_gen = [] { return at::make_generator<at::CPUGeneratorImpl>(5); };
  auto g0 = eval_gen();
  const at::Tensor eval = batch(g0, 16);
  auto g1 = eval_gen();
  const double before = trainer.eval_loss(eval, 500, g1, false);
  for (int i = 0; i < 40; ++i) trainer.step(batch(gen, 8), gen);
  auto g2 = eval_gen();
  const double after = trainer.eval_loss(eval, 500, g2, false);
  EXPECT_LT(after, 0.7 * before) << before << " -> " << after;
  EXPECT_EQ(trainer.steps_done(), 40);

  const auto dir = std::filesystem::temp_directory_path() / "copaint_train_test";
  std::filesystem::create_directories(dir);
  const std::string state = (dir / "state.safetensors").string();
  trainer.save_state(state);
  UNet other(small_config());
  DiffusionTrainer resumed(other, p, DiffusionSchedule::linear(1000));
  resumed.load_state(state);
  EXPECT_EQ(resumed.steps_done(), 40);
  auto ga = at::make_generator<at::CPUGeneratorImpl>(9);
  auto gb = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor next = batch(gen, 8);
  EXPECT_DOUBLE_EQ(trainer.step(next, ga), resumed.step(next, gb));

  const std::string pt = (dir / "ema.pt").string();
  save_torch_state_dict(pt, trainer.ema_state());
  const StateDict loaded = load_state_dict(pt);
  ASSERT_EQ(loaded.size(), unet.named_parameters().size());
  UNet from_file(small_config());
  from_file.load(loaded);
  const auto ema = trainer.ema_state();
  for (size_t i = 0; i < ema.size(); ++i) {
    EXPECT_TRUE(at::equal(from_file.named_parameters()[i].second, ema[i].second)) << ema[i].first;
  }
  std::filesystem::remove_all(dir);
}

TEST(Train, StateOfAnotherModelIsRejected) {
  UNet a(small_config());
  DiffusionTrainer ta(a, TrainParams{}, DiffusionSchedule::linear(1000));
  const auto path =
      (std::filesystem::temp_directory_path() / "copaint_train_state_b.safetensors").string();
  ta.save_state(path);
  UNetConfig c = small_config();
  c.num_channels = 64;
  UNet b(c);
  DiffusionTrainer tb(b, TrainParams{}, DiffusionSchedule::linear(1000));
  EXPECT_THROW(tb.load_state(path), InputError);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace copaint
