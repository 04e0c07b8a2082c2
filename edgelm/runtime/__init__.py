"""edgelm.runtime: run exported bundles on a device. numpy, tokenizers and a runtime; never torch."""

from edgelm.runtime.bundle import BUNDLE_FORMAT, Bundle
from edgelm.runtime.model import Model, ParityError

__all__ = ["BUNDLE_FORMAT", "Bundle", "Model", "ParityError"]
