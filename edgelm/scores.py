"""Scores: accuracy and macro-F1 for sentences, entity-level F1 for BIO tags (conlleval's rules: an
entity is an exact span and type), word accuracy for any other tag set. numpy only.

Written here rather than imported from seqeval because the device side scores bundles without
scikit-learn; the test suite checks these numbers against seqeval on the real test files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from edgelm.words import entities


def _prf(tp: int, n_pred: int, n_gold: int) -> dict:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": n_gold}


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Micro precision / recall / F1 over exact (span, type) matches, and the same per entity type."""
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for g, p in zip(gold, pred, strict=True):
        ge, pe = set(entities(g)), set(entities(p))
        for typ, *_ in ge:
            n_gold[typ] += 1
        for typ, *_ in pe:
            n_pred[typ] += 1
        for typ, *_ in ge & pe:
            tp[typ] += 1
    types = sorted(set(n_gold) | set(n_pred))
    return _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())) | {
        "per_type": {t: _prf(tp[t], n_pred[t], n_gold[t]) for t in types}}


def word_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Share of words whose tag is right."""
    pairs = [(a, b) for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True)]
    return float(np.mean([a == b for a, b in pairs])) if pairs else 0.0


def macro_f1(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in gold or predictions."""
    scores = []
    for c in range(n_labels):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def sentence_scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy and macro-F1 (mean over the classes present in gold or predictions)."""
    index = {label: i for i, label in enumerate(labels)}
    g = np.array([index[x] for x in gold])
    p = np.array([index[x] for x in pred])
    return {"accuracy": float(np.mean(g == p)) if len(g) else 0.0, "macro_f1": macro_f1(g, p, len(labels))}
