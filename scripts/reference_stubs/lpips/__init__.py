"""Stand-in for lpips: imported by the reference's metrics, unused by its samplers."""


class LPIPS:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("lpips.LPIPS: stand-in only (scripts/reference_stubs)")
