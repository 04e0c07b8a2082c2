"""Character n-grams: what a router can read before any expert runs, whatever the experts' vocabularies.

Whole bilingual students each have their own trimmed vocabulary and tokenizer, so the router over them
cannot read any one expert's tokens. It reads the text's characters instead: every 1-, 2- and 3-gram of
the lower-cased, NFC-normalised text (padded with a space at each end, so word edges count), hashed
into a fixed number of buckets. Script and spelling carry most of what names a language, which is what
a language router must know, and no tokenizer has to run for it.

`ngram_ids` is the one feature function training (torch) and the device (numpy) share; `CharRouterWeights`
and `route_texts_numpy` run the trained router (`routing.front.CharRouter`) on a device without torch.
The hash is crc32, fixed across platforms and Python versions (Python's `hash` is salted per process).
"""

from __future__ import annotations

import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.kernels.routing import RouterWeights, route_numpy


@dataclass(frozen=True)
class NgramSpec:
    """Which n-grams a router reads: orders, hash buckets, and how much of a text (characters)."""

    buckets: int = 1 << 14
    orders: tuple[int, ...] = (1, 2, 3)
    max_chars: int = 256

    def as_dict(self) -> dict:
        return {"buckets": self.buckets, "orders": list(self.orders), "max_chars": self.max_chars}

    @classmethod
    def from_dict(cls, d: dict) -> NgramSpec:
        try:
            spec = cls(int(d["buckets"]), tuple(int(n) for n in d["orders"]), int(d["max_chars"]))
        except (KeyError, TypeError, ValueError):
            raise EdgelmError(f"not an n-gram specification: {d!r}") from None
        if spec.buckets < 2 or not spec.orders or min(spec.orders) < 1 or spec.max_chars < 1:
            raise EdgelmError(f"not an n-gram specification: {d!r}")
        return spec


def _grams(text: str, spec: NgramSpec) -> list[int]:
    s = " " + " ".join(unicodedata.normalize("NFC", text).lower().split())[: spec.max_chars] + " "
    return [zlib.crc32(f"{n}\x00{s[i:i + n]}".encode("utf-8", "surrogatepass")) % spec.buckets
            for n in spec.orders for i in range(len(s) - n + 1)]


def ngram_ids(texts: list[str], spec: NgramSpec) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), both (texts, longest) int64: each text's hashed n-grams, padded with 0 / mask 0."""
    rows = [_grams(t, spec) for t in texts]
    ids = np.zeros((len(rows), max(map(len, rows), default=1)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for k, r in enumerate(rows):
        ids[k, : len(r)], mask[k, : len(r)] = r, 1
    return ids, mask


@dataclass
class CharRouterWeights:
    """A trained character-n-gram router as arrays: the n-gram table, then SCAR's query and prototypes."""

    spec: NgramSpec
    table: np.ndarray  # (buckets, dim)
    router: RouterWeights

    def route(self, texts: list[str], tau: float, k_max: int, general: int | None = None) -> dict[str, np.ndarray]:
        return route_texts_numpy(self, texts, tau, k_max, general)


def route_texts_numpy(w: CharRouterWeights, texts: list[str], tau: float, k_max: int,
                      general: int | None = None) -> dict[str, np.ndarray]:
    """`routing.front.CharRouter.forward` in numpy: weights, chosen experts (bool) and mixing weights."""
    ids, mask = ngram_ids(texts, w.spec)
    return route_numpy(w.router, w.table[ids], mask, tau, k_max, general)
