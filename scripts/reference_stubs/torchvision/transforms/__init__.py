"""Stand-in for torchvision.transforms."""
from . import functional  # noqa: F401


class ToPILImage:
    def __call__(self, *args, **kwargs):
        raise NotImplementedError("torchvision.transforms.ToPILImage: stand-in only")
