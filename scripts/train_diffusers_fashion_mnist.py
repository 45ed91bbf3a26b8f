#!/usr/bin/env python3
"""Trains a small diffusers UNet2DModel on Fashion-MNIST briefly (CPU) and saves it in diffusers'
folder format, to show every method running on a diffusers model (README, issue 30).

How to run (the venv of tests/fixtures/diffusers/generate_diffusers_fixtures.py with the
project's PyPI torch 2.11 first on the path: Debian's torch 1.13 trains 10x slower on its
reference BLAS; Debian's dataset-fashion-mnist package provides the data):
    PYTHONPATH=~/.cache/copaint/torch-2.11 /work/venv-i30/bin/python \
        scripts/train_diffusers_fashion_mnist.py OUT_DIR --minutes 10
Images: 28x28 grey padded with background to 32x32, replicated to RGB, in [-1, 1] (as the
`fashion_mnist` dataset of this project reads them). DDPMScheduler: linear betas 1e-4..0.02 over
1000 steps, epsilon, fixed_small. Adam, MSE on eps, EMA of the weights (saved).
Measured here: 2047 steps (batch 16) in 13 minutes with OMP_NUM_THREADS=1 while a test suite
used the other core (about 8 steps/s alone), last-100 loss 0.028: enough for the README's grid
(clothing-like fills on half masks); give it more --minutes for a better model.
"""
import argparse
import copy
import gzip
import time

import numpy as np
import safetensors.torch  # noqa: F401 (save_pretrained needs it loaded with torch 2.11 here)
import torch
from diffusers import DDPMScheduler, UNet2DModel


def load_images(path):
    with gzip.open(path) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    x = torch.zeros(len(data), 1, 32, 32)
    x[:, 0, 2:30, 2:30] = torch.from_numpy(data.astype(np.float32))
    return (x / 127.5 - 1).expand(-1, 3, -1, -1).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=8)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_images("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    model = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
        block_out_channels=(16, 32, 32), norm_num_groups=8, attention_head_dim=16,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6)
    ema = copy.deepcopy(model).eval()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4,
                          beta_end=0.02, variance_type="fixed_small", clip_sample=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start, step, losses = time.time(), 0, []
    while time.time() - start < args.minutes * 60:
        x0 = data[torch.randint(0, len(data), (args.batch_size,))]
        t = torch.randint(0, 1000, (args.batch_size,))
        noise = torch.randn_like(x0)
        loss = torch.nn.functional.mse_loss(model(sched.add_noise(x0, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.mul_(decay).add_(p, alpha=1 - decay)
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {np.mean(losses[-100:]):.4f} {time.time() - start:.0f}s",
                  flush=True)
    ema.save_pretrained(args.out)
    sched.save_config(args.out)
    print(f"saved {args.out}: {step} steps, {sum(p.numel() for p in ema.parameters())} parameters,"
          f" last-100 loss {np.mean(losses[-100:]):.4f}")


if __name__ == "__main__":
    main()
