"""Stand-in for torchvision.transforms.functional."""


def rgb_to_grayscale(*args, **kwargs):
    raise NotImplementedError("rgb_to_grayscale: stand-in only (scripts/reference_stubs)")
