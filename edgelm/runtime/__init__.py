"""edgelm.runtime: run exported bundles on a device. numpy, tokenizers and a runtime; never torch."""

from edgelm.runtime.backends import BACKENDS, RUNS, OnnxBackend, TfliteBackend, TfliteSignatures
from edgelm.runtime.bundle import BUNDLE_FORMAT, Bundle
from edgelm.runtime.model import ClassifierModel, EmbeddingModel, Model, TaggingModel
from edgelm.runtime.parity import ParityError

__all__ = ["BACKENDS", "BUNDLE_FORMAT", "RUNS", "Bundle", "ClassifierModel", "EmbeddingModel", "Model", "OnnxBackend",
           "ParityError", "TaggingModel", "TfliteBackend", "TfliteSignatures"]
