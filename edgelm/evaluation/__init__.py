"""Evaluation: how good a model is in each language (SIB-200 transfer, Tatoeba retrieval, the user's own tasks)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgelm.artifacts import load
from edgelm.data.locate import data_root
from edgelm.data.sib200 import sib200_languages
from edgelm.data.tasks import load_task
from edgelm.data.ntrex import ntrex_languages
from edgelm.data.tatoeba import tatoeba_languages
from edgelm.errors import EdgelmError
from edgelm.evaluation.sib200 import evaluate_sib200, evaluate_sib200_head
from edgelm.evaluation.tasks import evaluate_task, test_languages
from edgelm.evaluation.tatoeba import evaluate_ntrex, evaluate_tatoeba
from edgelm.protocols import Classifier, Embedder

TASKS = ("sib200", "tatoeba", "ntrex")


def evaluate_model(model: str, *, tasks: list[str], languages: list[str] | None = None,
                   source: str = "eng_Latn", data: str | Path | None = None, prefix: str | None = None,
                   threads: int | None = None, seed: int = 0, probe: bool = False) -> dict:
    """Run the given tasks on `model` (anything `edgelm.load` opens); return the scores with the model,
    data and settings used.

    `languages=None` means every language the data folder has for that task. A classifier (a task model
    or a classifier bundle) trained on SIB-200's labels is scored by its own head unless `probe` asks
    for the embedding probe.
    """
    from edgelm.version import __version__

    user_tasks = {t: load_task(t) for t in tasks if t not in TASKS and Path(t).exists()}
    unknown = [t for t in tasks if t not in TASKS and t not in user_tasks]
    if unknown or not tasks:
        raise EdgelmError(f"unknown task {unknown[0] if unknown else '(none)'}; use {', '.join(TASKS)} or a task "
                          "folder / file (see `edgelm eval --help`)")
    for name, task in user_tasks.items():
        test_languages(task, languages)  # bad languages fail before a model loads
    root = data_root(data) if set(tasks) & set(TASKS) else None
    # Check languages against the data before loading a model: bad input fails in milliseconds.
    sib_langs = tat_langs = None
    if "sib200" in tasks:
        from edgelm.data.sib200 import resolve_sib200_language

        sib_langs = [resolve_sib200_language(root, l) for l in languages] if languages else sib200_languages(root)
        resolve_sib200_language(root, source)
    retrieval = {}  # task -> languages, for the bitext retrieval tasks
    for task, languages_of, label in (("tatoeba", tatoeba_languages, "Tatoeba"), ("ntrex", ntrex_languages, "NTREX")):
        if task in tasks:
            retrieval[task] = _retrieval_languages(root, languages, languages_of(root), label,
                                                   strict="sib200" not in tasks)
    tat_langs = retrieval.get("tatoeba")
    started = time.perf_counter()
    encoder = load(model, prefix=prefix, threads=threads)
    head = isinstance(encoder, Classifier) and not probe
    if sib_langs is not None and not head and not isinstance(encoder, Embedder):
        raise EdgelmError(f"{model} classifies and does not embed: score it on SIB-200 without --probe")
    if any(retrieval.values()) and not isinstance(encoder, Embedder):
        raise EdgelmError(f"{model} classifies and does not embed: retrieval needs sentence vectors (--task sib200)")
    report: dict = {
        "edgelm_version": __version__,
        "model": {"name": str(model)},
        "data": str(root) if root else None,
        "settings": {"tasks": list(tasks), "source": source, "seed": seed, "threads": _threads(threads)},
    }
    if sib_langs is not None:
        if head:
            report["sib200"] = evaluate_sib200_head(encoder, root, sib_langs)
        else:
            report["sib200"] = evaluate_sib200(encoder, root, sib_langs, source=source, seed=seed)
    if tat_langs:
        report["tatoeba"] = evaluate_tatoeba(encoder, root, tat_langs)
    if retrieval.get("ntrex"):
        report["ntrex"] = evaluate_ntrex(encoder, root, retrieval["ntrex"])
    for name, task in user_tasks.items():
        report[name] = evaluate_task(encoder, task, languages, source=source, seed=seed, probe=probe)
    report["model"] |= encoder.describe()  # after scoring: a routed model or bundle reports how it ran
    report["elapsed_s"] = round(time.perf_counter() - started, 2)
    return report


def _retrieval_languages(root: Path, languages: list[str] | None, have: list[str], label: str,
                         strict: bool) -> list[str]:
    """The languages a retrieval task scores (each against English): the asked ones it has (all of them,
    when `strict`: it is the only task), or all it has."""
    have = [l for l in have if l != "eng_Latn"]
    if not languages:
        return have
    from edgelm.data.languages import normalize_language

    wanted = [normalize_language(l, have) for l in languages]
    missing = [l for l in wanted if l not in have]
    if strict and missing:
        raise EdgelmError(f"{label} data in {root} lacks {missing[0]}; it has: {' '.join(have)}")
    return [l for l in wanted if l in have]


def _threads(asked: int | None) -> int | None:
    """The torch threads in use (a torch model), else what was asked of the runtime."""
    if "torch" in sys.modules:
        import torch

        return torch.get_num_threads()
    return asked
