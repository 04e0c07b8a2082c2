"""`edgelm eval MODEL --task PATH`: a model scored on the user's own task, per language.

Sentence tasks: a classifier whose labels are the task's is scored by its own head; any embedder by a
logistic-regression probe on its frozen sentence vectors — trained in-language where the language has
a training split (AfriSenti), else on the source language's (zero-shot transfer, NollySenti), and each
score says which. Tagging tasks need a model that tags words (a token classifier): entity-level F1 for
BIO tags, word accuracy for any other tag set.
"""

from __future__ import annotations

import numpy as np

from edgelm.data.tasks import Task
from edgelm.errors import EdgelmError
from edgelm.scores import entity_scores, sentence_scores, word_accuracy
from edgelm.protocols import Classifier, Embedder, Tagger


def test_languages(task: Task, languages: list[str] | None) -> list[str]:
    """The languages to score: those asked for (each must have a test split), else every one that has one."""
    have = [lang for lang in task.languages if task.has(lang, "test")]
    if not languages:
        if not have:
            raise EdgelmError(f"task {task.path} has no test split to score")
        return have
    from edgelm.data.languages import normalize_language

    wanted = [normalize_language(lang, task.languages) for lang in languages]
    missing = [lang for lang in wanted if lang not in have]
    if missing:
        raise EdgelmError(f"task {task.path} has no test split for {missing[0]}; it has: {' '.join(have) or 'none'}")
    return wanted


def _check_labels(model, task: Task) -> None:
    if sorted(model.labels) != sorted(task.labels):
        raise EdgelmError(f"{model.describe()['path']} predicts {list(model.labels)}, not this task's labels "
                          f"{task.labels}")


def _probe_scores(model, task: Task, languages: list[str], source: str, seed: int) -> list[dict]:
    from edgelm.evaluation.sib200 import train_probe

    index = {label: i for i, label in enumerate(task.labels)}

    def xy(lang: str, split: str, what: str):
        rows = task.split(split, [lang])
        return (model.embed([r.text for r in rows], progress=f"{lang} {what}", language=lang),
                np.array([index[r.label] for r in rows]))

    probes: dict[str, tuple] = {}
    scores = []
    for lang in languages:
        home = lang if task.has(lang, "train") else source
        if not task.has(home, "train"):
            raise EdgelmError(f"task {task.path} has no training split in {lang} or in the source {source}: "
                              "the probe has nothing to learn from (--source names the language with training data)")
        if home not in probes:
            x, y = xy(home, "train", "train")
            xd, yd = xy(home, "dev", "dev") if task.has(home, "dev") else (x, y)
            probes[home] = train_probe(x, y, xd, yd, seed=seed)
        probe, c, dev = probes[home]
        x, y = xy(lang, "test", "test")
        pred = [task.labels[i] for i in probe.predict(x)]
        found = sentence_scores([task.labels[i] for i in y], pred, task.labels)
        scores.append({"language": lang, "score": found["accuracy"], **found,
                       "n": len(y), "setting": "in-language" if home == lang else f"zero-shot from {home}",
                       "probe_C": c, "probe_dev_accuracy": dev})
    return scores


def evaluate_task(model, task: Task, languages: list[str] | None = None, *, source: str = "eng_Latn",
                  seed: int = 0, probe: bool = False) -> dict:
    """Per-language scores of `model` on `task`'s test splits (see the module docstring)."""
    langs = test_languages(task, languages)
    out = {"path": str(task.path), "kind": task.kind, "scheme": task.scheme, "labels": task.labels,
           "formats": task.formats}
    if task.scheme == "bio":
        out["stray_inside_tags"] = task.stray_inside  # read as conlleval reads them: each starts an entity
    if task.kind == "sentence":
        if isinstance(model, Classifier) and not probe:
            _check_labels(model, task)
            scores = []
            for lang in langs:
                rows = task.split("test", [lang])
                pred = [p["label"] for i in range(0, len(rows), 64) for p in model.predict([r.text for r in rows[i:i + 64]])]
                found = sentence_scores([r.label for r in rows], pred, task.labels)
                scores.append({"language": lang, "score": found["accuracy"], **found, "n": len(rows),
                               "setting": "model head"})
            return out | {"scorer": "accuracy (model head)", "scores": scores}
        if not isinstance(model, Embedder):
            raise EdgelmError(f"{model.describe()['path']} neither embeds nor classifies these labels")
        return out | {"scorer": "accuracy (logistic-regression probe on sentence vectors)",
                      "scores": _probe_scores(model, task, langs, source, seed)}
    if not isinstance(model, Tagger):
        raise EdgelmError(f"{model.describe()['path']} does not tag words: a tagging task needs a token classifier "
                          f"(edgelm distill --task {task.path} makes one)")
    _check_labels(model, task)
    scores = []
    for lang in langs:
        rows = task.split("test", [lang])
        gold = [list(r.tags) for r in rows]
        pred = [[w["tag"] for w in tagged] for tagged in model.tag_words([list(r.words) for r in rows])]
        if task.scheme == "bio":
            found = entity_scores(gold, pred)
            scores.append({"language": lang, "score": found["f1"], "entity_f1": found["f1"],
                           "precision": found["precision"], "recall": found["recall"],
                           "per_type": {t: v["f1"] for t, v in found["per_type"].items()}, "n": len(rows)})
        else:
            acc = word_accuracy(gold, pred)
            scores.append({"language": lang, "score": acc, "word_accuracy": acc, "n": len(rows),
                           "words": sum(len(g) for g in gold)})
    return out | {"scorer": "entity F1 (exact span and type)" if task.scheme == "bio" else "word accuracy",
                  "scores": scores}
