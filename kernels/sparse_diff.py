"""Sparse parameter differences: what Lottery-Ticket Sparse Fine-Tuning learns, as data.

A :class:`SparseDiff` holds, per tensor, the flat (row-major) indices of the entries that changed and
their deltas. Training produces one, routing adds and removes several on one shared body, and the
device applies one to numpy weights: so `apply` / `remove` work on torch tensors and numpy arrays
alike, and the two are tested to agree.

Stored as safetensors (`<name>::indices` int64, `<name>::values` float32) with shapes and the
fingerprint of the body it was trained from in the metadata, so a diff cannot be applied to a
different body by mistake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "edgelm.sparse_diff/1"


class SparseDiffError(ValueError):
    """A diff that does not fit the weights it is applied to."""


def _np(t: Any) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    return t.detach().cpu().numpy()  # torch tensor


def fingerprint(state: Mapping[str, Any], names: list[str] | None = None) -> str:
    """sha256 over the names, shapes and float32 bytes of `names` (default: all) in `state`."""
    h = hashlib.sha256()
    for name in sorted(names if names is not None else state):
        arr = np.ascontiguousarray(_np(state[name]), dtype=np.float32)
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


@dataclass
class SparseDiff:
    """Per-tensor sparse deltas: name -> (flat indices, values, shape)."""

    indices: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    base_fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def between(cls, base: Mapping[str, Any], tuned: Mapping[str, Any],
                masks: Mapping[str, Any] | None = None, *, atol: float = 0.0) -> SparseDiff:
        """The entries of `tuned` that differ from `base` (only inside `masks`, when given)."""
        diff = cls()
        for name, b in base.items():
            if name not in tuned or (masks is not None and name not in masks):
                continue
            delta = (_np(tuned[name]).astype(np.float32) - _np(b).astype(np.float32)).reshape(-1)
            keep = np.abs(delta) > atol
            if masks is not None:
                keep &= _np(masks[name]).reshape(-1).astype(bool)
            idx = np.flatnonzero(keep)
            if idx.size:
                diff.indices[name] = idx.astype(np.int64)
                diff.values[name] = delta[idx]
                diff.shapes[name] = tuple(_np(b).shape)
        diff.base_fingerprint = fingerprint(base, list(diff.indices))
        return diff

    @property
    def nnz(self) -> int:
        return int(sum(v.size for v in self.values.values()))

    def density(self, state: Mapping[str, Any]) -> float:
        """Non-zeros as a fraction of all entries of `state`."""
        total = sum(int(np.prod(_np(t).shape)) for t in state.values())
        return self.nnz / total if total else 0.0

    def _check(self, state: Mapping[str, Any]) -> None:
        for name, shape in self.shapes.items():
            if name not in state:
                raise SparseDiffError(f"the weights have no tensor {name!r} that this diff changes")
            if tuple(_np(state[name]).shape) != tuple(shape):
                raise SparseDiffError(f"{name}: diff is for shape {shape}, weights are {tuple(_np(state[name]).shape)}")

    def _add(self, state: Mapping[str, Any], sign: float) -> None:
        self._check(state)
        for name, idx in self.indices.items():
            t = state[name]
            vals = self.values[name] * sign
            if isinstance(t, np.ndarray):
                flat = t.reshape(-1)  # a view for contiguous arrays
                if not np.shares_memory(flat, t):
                    raise SparseDiffError(f"{name}: numpy weights must be contiguous to update in place")
                flat[idx] += vals.astype(t.dtype)
            else:
                import torch

                with torch.no_grad():
                    t.view(-1).index_add_(0, torch.from_numpy(idx).to(t.device),
                                          torch.from_numpy(vals).to(t.device, t.dtype))

    def apply(self, state: Mapping[str, Any], *, check_base: bool = True) -> None:
        """Add the deltas to `state` in place (torch tensors or numpy arrays).

        With `check_base`, refuses weights that are not the body the diff was trained from.
        """
        if check_base and self.base_fingerprint:
            got = fingerprint(state, list(self.indices))
            if got != self.base_fingerprint:
                raise SparseDiffError("this diff was trained from a different body (fingerprint mismatch)")
        self._add(state, +1.0)

    def remove(self, state: Mapping[str, Any]) -> None:
        """Subtract the deltas again: `remove` after `apply` restores the body (to float rounding)."""
        self._add(state, -1.0)

    def save(self, path: str | Path) -> None:
        """Write as safetensors (atomically)."""
        from safetensors.numpy import save

        from edgelm.atomic import atomic_write_bytes

        tensors = {}
        for name in self.indices:
            tensors[f"{name}::indices"] = np.ascontiguousarray(self.indices[name])
            tensors[f"{name}::values"] = np.ascontiguousarray(self.values[name], dtype=np.float32)
        header = {"format": FORMAT, "shapes": json.dumps({k: list(v) for k, v in self.shapes.items()}),
                  "base_fingerprint": self.base_fingerprint, "meta": json.dumps(self.meta)}
        atomic_write_bytes(path, save(tensors, metadata=header))

    @classmethod
    def load(cls, path: str | Path) -> SparseDiff:
        """Read a diff written by :meth:`save`."""
        from edgelm.tensorfile import read_tensors

        header, tensors = read_tensors(path, "sparse diff", framework="np")
        if header.get("format") != FORMAT:
            raise SparseDiffError(f"{path} is not an edgelm sparse diff")
        shapes = {k: tuple(v) for k, v in json.loads(header["shapes"]).items()}
        diff = cls(shapes=shapes, base_fingerprint=header.get("base_fingerprint", ""),
                   meta=json.loads(header.get("meta", "{}")))
        for name in shapes:
            diff.indices[name] = tensors[f"{name}::indices"]
            diff.values[name] = tensors[f"{name}::values"]
        return diff
