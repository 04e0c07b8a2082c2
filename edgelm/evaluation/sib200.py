"""SIB-200 zero-shot cross-lingual transfer over frozen sentence embeddings.

A logistic-regression probe is trained on the source language's train split, its C picked on the
source dev split, and scored on the test split of every requested language. The encoder stays
frozen, so the score measures how well its embedding space carries topics across languages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgelm.data.sib200 import load_sib200, resolve_sib200_language, sib200_labels
from edgelm.errors import EdgelmError
from edgelm.scores import macro_f1

C_GRID = (0.1, 1.0, 10.0, 100.0)


@dataclass
class SibScore:
    language: str
    accuracy: float
    macro_f1: float
    n: int


def train_probe(x_train, y_train, x_dev, y_dev, grid=C_GRID, seed: int = 0):
    """Fit a logistic-regression probe per C; return (best probe, its C, its dev accuracy). scikit-learn's
    where it is installed, else the same objective solved in numpy (a device without it)."""
    from edgelm.evaluation.probe import logistic_regression

    best = None
    for c in grid:
        clf = logistic_regression(c, seed).fit(x_train, y_train)
        acc = float(np.mean(clf.predict(x_dev) == y_dev))
        if best is None or acc > best[2]:
            best = (clf, c, acc)
    return best


def probe_kind(probe) -> str:
    from edgelm.evaluation.probe import NumpyLogisticRegression

    return "logistic_regression (numpy L-BFGS)" if isinstance(probe, NumpyLogisticRegression) else "logistic_regression"


def evaluate_sib200(encoder, root: Path, languages: list[str], *, source: str = "eng_Latn",
                    seed: int = 0) -> dict:
    """Accuracy and macro-F1 on each language's test split, probe trained on `source`."""
    source = resolve_sib200_language(root, source)
    languages = [resolve_sib200_language(root, lang) for lang in languages]
    labels = sib200_labels(root)
    index = {name: i for i, name in enumerate(labels)}

    def xy(lang: str, split: str, what: str):
        rows = load_sib200(root, lang, split)
        x = encoder.embed([r.text for r in rows], progress=f"SIB-200 {what}", language=lang)
        return x, np.array([index[r.label] for r in rows])

    x_train, y_train = xy(source, "train", f"{source} train")
    x_dev, y_dev = xy(source, "dev", f"{source} dev")
    probe, c, dev_acc = train_probe(x_train, y_train, x_dev, y_dev, seed=seed)
    scores = []
    for lang in languages:
        x, y = xy(lang, "test", f"{lang} test")
        pred = probe.predict(x)
        scores.append(SibScore(lang, float(np.mean(pred == y)), macro_f1(y, pred, len(labels)), len(y)))
    return {
        "source": source,
        "probe": {"kind": probe_kind(probe), "C": c, "dev_accuracy": dev_acc, "C_grid": list(C_GRID)},
        "labels": labels,
        "scores": [asdict(s) for s in scores],
    }


def evaluate_sib200_head(model, root: Path, languages: list[str]) -> dict:
    """Accuracy of a SIB-200 classifier's own predictions (zero-shot in every language but its source).

    `model` is any `edgelm.protocols.Classifier`: a task model (torch) or a classifier bundle (its runtime).
    """
    labels = sib200_labels(root)
    if list(model.labels) != labels:
        raise EdgelmError(f"{model.describe()['path']} classifies into {list(model.labels)}, not SIB-200's labels")
    index = {name: i for i, name in enumerate(labels)}
    scores = []
    for lang in languages:
        rows = load_sib200(root, lang, "test")
        pred = np.array([index[p["label"]] for i in range(0, len(rows), 64)
                         for p in model.predict([r.text for r in rows[i : i + 64]])])
        y = np.array([index[r.label] for r in rows])
        scores.append(SibScore(lang, float(np.mean(pred == y)), macro_f1(y, pred, len(labels)), len(y)))
    return {"source": None, "probe": {"kind": "model_head"}, "labels": labels, "scores": [asdict(s) for s in scores]}
