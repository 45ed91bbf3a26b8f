"""Stand-in for torchvision.utils."""


def make_grid(*args, **kwargs):
    raise NotImplementedError("torchvision.utils.make_grid: stand-in only (scripts/reference_stubs)")
