"""An exported bundle behind the evaluation interface: `edgelm eval BUNDLE` scores what the device
runs (its runtime, its quantization, its buckets and truncation), not the torch model it came from."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgelm.encoder import EmbeddingRecipe
from edgelm.errors import EdgelmError
from edgelm.progress import progress_bar


def is_bundle(path) -> bool:
    return (Path(str(path)) / "manifest.json").is_file()


class BundleEncoder:
    """`embed` through `edgelm.runtime.Model` (sha256- and parity-checked on load)."""

    def __init__(self, model, path: Path):
        self.runtime, self.path = model, path
        cfg = model.bundle.config
        self.recipe = EmbeddingRecipe(cfg.get("pooling", "mean"), bool(cfg.get("normalize", True)), cfg.get("prefix", ""))
        self.max_length = model.max_length
        self.truncated = 0  # texts longer than the bundle takes, cut as the device would cut them

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> BundleEncoder:
        from edgelm.runtime import Model

        model = Model.load(path, threads=threads)
        if model.task != "embedding":
            raise EdgelmError(f"{path} is a {model.task} bundle; edgelm eval scores sentence-embedding bundles")
        return cls(model, Path(path))

    def describe(self) -> dict:
        arch = self.runtime.bundle.config.get("architecture") or {}
        export = self.runtime.bundle.manifest.get("export", {})
        return {"parameters": None, "layers": arch.get("layers"), "vocab_size": arch.get("vocab"),
                "source": export.get("source"),
                "bundle": {k: export.get(k) for k in ("target", "quantize", "runtime")} | {"backend": self.runtime.backend.name}}

    def embed(self, texts: list[str], *, batch_size: int = 32, progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        """Embed `texts` in length-sorted batches; rows in the input's order (a bundle routes as exported)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: np.ndarray | None = None
        with progress_bar(progress or "embedding", len(texts), "sent", enabled=None if progress else False) as advance:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    vecs = self.runtime.embed([texts[i] for i in idx])
                self.truncated += sum(int(str(w.message).split()[0]) for w in caught if "truncated" in str(w.message))
                if out is None:
                    out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                advance(len(idx))
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)
