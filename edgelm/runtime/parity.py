"""Parity: how far a runtime's outputs are from the source model's, and which thresholds they miss. No torch."""

from __future__ import annotations

import numpy as np

from edgelm.errors import EdgelmError


class ParityError(EdgelmError):
    """The runtime's outputs disagree with the source model's beyond the bundle's tolerance."""


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return (a * b).sum(1)


def token_rows(task: str, outputs: list, mask: np.ndarray) -> list:
    """A tagger's outputs (batch, tokens, labels), padded to any width, as the rows of the real tokens only
    (what the parity check compares: widths differ between runtimes, the real tokens do not); other
    tasks' outputs as they are."""
    if task != "tagging":
        return outputs
    lengths = mask.sum(1).astype(int)
    return [np.concatenate([np.asarray(o[i])[:n] for i, n in enumerate(lengths)]) for o in outputs]


def compare_outputs(task: str, got: np.ndarray, want: np.ndarray) -> dict:
    """How far runtime outputs are from the reference: cosine for embeddings, labels + logits otherwise
    (a tagger's: one row per real token, so label agreement is the share of tokens tagged alike)."""
    got, want = np.asarray(got, dtype=np.float32), np.asarray(want, dtype=np.float32)
    if got.shape != want.shape:
        return {"shape_ok": False, "got_shape": list(got.shape), "want_shape": list(want.shape)}
    report = {"shape_ok": True, "min_cosine": float(cosine_rows(got, want).min())}
    if task in ("classification", "tagging"):
        report["label_agreement"] = float(np.mean(got.argmax(1) == want.argmax(1)))
        report["max_logit_diff"] = float(np.abs(got - want).max())
    return report


def routing_agreement(got, want) -> float:
    """Share of inputs whose set of chosen experts is identical."""
    got, want = np.asarray(got, dtype=bool), np.asarray(want, dtype=bool)
    return float((got == want).all(1).mean()) if got.shape == want.shape else 0.0


def parity_failures(report: dict, thresholds: dict) -> list[str]:
    """The thresholds a comparison misses, each with by how much."""
    if not report.get("shape_ok"):
        return [f"output shape {report['got_shape']} != {report['want_shape']}"]
    misses = []
    if report["min_cosine"] < thresholds["min_cosine"]:
        misses.append(f"min cosine {report['min_cosine']:.5f} < {thresholds['min_cosine']} "
                      f"(short by {thresholds['min_cosine'] - report['min_cosine']:.5f})")
    if "routing_agreement" in report and report["routing_agreement"] < thresholds.get("routing_agreement", 0):
        misses.append(f"the router chose other experts for {1 - report['routing_agreement']:.0%} of the inputs "
                      f"(allowed: {1 - thresholds['routing_agreement']:.0%})")
    if "label_agreement" in report and report["label_agreement"] < thresholds.get("label_agreement", 0):
        misses.append(f"label agreement {report['label_agreement']:.3f} < {thresholds['label_agreement']}")
    return misses
