#!/usr/bin/env python3
"""Times one inpainting sample of the reference implementation (UCSB-NLP-Chang/CoPaint at commit
0b728b02): CoPaint (its O_DDIMSampler with configs/celebahq.yaml's settings: G = 2, adaptive and
smart learning rate) or DDNM (its DDNMSampler), on a random-weight UNet of a given architecture,
batch 1, half mask. The same case as benchmarks/race_benchmark.cpp, so scripts/gpu_check.sh can
report our time / the reference's time on one machine in one call.

Usage: race_reference.py REF_DIR CONFIG_JSON METHOD STEPS DEVICE PRECISION THREADS
  REF_DIR      a copy of the reference (guided_diffusion/, utils/, configs/; gpu_bundle.sh --reference)
  CONFIG_JSON  {"config": {create_model's arguments}} (tests/fixtures/unet/adm_tiny_config.json,
               scripts/race_configs/celebahq256.json)
  METHOD       copaint | ddnm;  STEPS: respaced steps;  DEVICE: cpu | cuda
  PRECISION    fp32 (TF32 off) | tf32 | fp16 (the reference's use_fp16: convert_to_fp16)
Prints one JSON line: method, seconds (one sample, after one untimed warm-up sample),
unet_forward, unet_backward, steps, precision, device."""
import json
import os
import sys
import time
import types

REF, CONFIG, METHOD, STEPS, DEVICE, PRECISION, THREADS = sys.argv[1:8]
STEPS, THREADS = int(STEPS), int(THREADS)
HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.abspath(CONFIG)
sys.path.insert(0, os.path.abspath(REF))
sys.path.append(os.path.join(HERE, "reference_stubs"))  # only where the real package is missing
os.chdir(REF)

import torch  # noqa: E402
from guided_diffusion.script_util import create_model, create_gaussian_diffusion  # noqa: E402
from guided_diffusion import O_DDIMSampler, DDNMSampler  # noqa: E402
from utils.config import Config  # noqa: E402
import guided_diffusion.ddim as gddim  # noqa: E402

gddim.logging_info = lambda *a, **k: None
gddim.tqdm = lambda x, **k: x
torch.set_num_threads(THREADS)
torch.backends.cuda.matmul.allow_tf32 = PRECISION == "tf32"
torch.backends.cudnn.allow_tf32 = PRECISION == "tf32"
device = torch.device(DEVICE)

cfg = json.load(open(CONFIG))["config"]
cfg["use_fp16"] = PRECISION == "fp16"
torch.manual_seed(0)
model = create_model(**cfg, conf=types.SimpleNamespace(diffusion_steps=1000))
with torch.no_grad():  # the reference zero-initialises output layers: randomise every tensor
    for p in model.parameters():
        p.normal_(0.0, 0.02)
model.to(device)
if cfg["use_fp16"]:
    model.convert_to_fp16()
model.eval()

conf = Config(default_config_file=os.path.join("configs", "celebahq.yaml"), use_argparse=False)
conf["timestep_respacing"] = str(STEPS)
conf["ddim.schedule_params.num_inference_steps"] = STEPS
conf["ddim.schedule_params.ddpm_num_steps"] = STEPS
conf["ddnm.schedule_jump_params.t_T"] = STEPS
cls = {"copaint": O_DDIMSampler, "ddnm": DDNMSampler}[METHOD]
sampler = create_gaussian_diffusion(diffusion_steps=1000, learn_sigma=cfg["learn_sigma"],
                                    noise_schedule="linear", timestep_respacing=str(STEPS),
                                    conf=conf, base_cls=cls)
counts = {"fwd": 0, "bwd": 0}
model.out.register_full_backward_hook(lambda m, gi, go: counts.__setitem__("bwd", counts["bwd"] + 1))


def model_fn(x, t, y=None, gt=None, **kw):
    counts["fwd"] += 1
    return model(x, t, None)


size = cfg["image_size"]
torch.manual_seed(1)
image = (torch.rand(1, 3, size, size) * 2 - 1).to(device)
mask = torch.ones(1, 1, size, size, device=device)
mask[..., size // 2:] = 0  # half mask: the bottom half is unknown
kw = {"gt": image, "gt_keep_mask": mask}


def sample():
    out = sampler.p_sample_loop(model_fn, shape=(1, 3, size, size), model_kwargs=kw, device=device,
                                progress=False, conf=conf, sample_dir=None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out


sample()  # warm-up: kernel selection, allocator
counts.update(fwd=0, bwd=0)
t0 = time.perf_counter()
sample()
seconds = time.perf_counter() - t0
print(json.dumps({"method": METHOD, "seconds": round(seconds, 4), "unet_forward": counts["fwd"],
                  "unet_backward": counts["bwd"], "steps": STEPS, "precision": PRECISION,
                  "device": DEVICE, "torch": torch.__version__}))
