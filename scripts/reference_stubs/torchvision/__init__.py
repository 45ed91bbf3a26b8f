"""Stand-in for torchvision: the reference imports `torch` through it (dps.py) and image-saving
helpers (utils/__init__.py) that its samplers never call."""
import torch  # noqa: F401  (the reference does `from torchvision import torch`)

from . import transforms, utils  # noqa: F401
