"""Stand-in for blobfile: imported by the reference's data and checkpoint helpers, unused here."""


def __getattr__(name):
    raise NotImplementedError(f"blobfile.{name}: stand-in only (scripts/reference_stubs)")
