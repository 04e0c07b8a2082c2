"""Evaluation: how good a model is in each language (SIB-200 transfer, Tatoeba retrieval)."""

from __future__ import annotations

import time
from pathlib import Path

from edgelm.data.locate import data_root
from edgelm.data.sib200 import sib200_languages
from edgelm.data.tatoeba import tatoeba_languages
from edgelm.evaluate.sib200 import evaluate_sib200, evaluate_sib200_head, head_labels
from edgelm.evaluate.tatoeba import evaluate_tatoeba
from edgelm.errors import EdgelmError

TASKS = ("sib200", "tatoeba")


def evaluate_model(model: str, *, tasks: list[str], languages: list[str] | None = None,
             source: str = "eng_Latn", data: str | Path | None = None, prefix: str | None = None,
             threads: int | None = None, seed: int = 0, probe: bool = False) -> dict:
    """Run the given tasks on `model`; return the scores with the model, data and settings used.

    `languages=None` means every language the data folder has for that task. A sequence classifier
    trained on SIB-200's labels is scored by its own head unless `probe` asks for the embedding probe.
    """
    from edgelm import __version__
    from edgelm.encoder import Encoder

    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise EdgelmError(f"unknown task {unknown[0] if unknown else '(none)'}; use {', '.join(TASKS)}")
    root = data_root(data)
    # Check languages against the data before loading a model: bad input fails in milliseconds.
    sib_langs = tat_langs = None
    if "sib200" in tasks:
        from edgelm.data.sib200 import resolve_sib200_language

        sib_langs = [resolve_sib200_language(root, l) for l in languages] if languages else sib200_languages(root)
        resolve_sib200_language(root, source)
    if "tatoeba" in tasks:
        have = tatoeba_languages(root)
        if languages:
            from edgelm.data.languages import normalize_language

            wanted = [normalize_language(l, have) for l in languages]
            if "sib200" not in tasks:
                missing = [l for l in wanted if l not in have]
                if missing:
                    raise EdgelmError(f"Tatoeba data in {root} lacks {missing[0]}; it has: {' '.join(have)}")
            tat_langs = [l for l in wanted if l in have]
        else:
            tat_langs = have
    import torch

    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    encoder = Encoder.load(model, prefix=prefix)

    report: dict = {
        "edgelm_version": __version__,
        "model": {
            "name": str(model), "path": str(encoder.path), **encoder.describe(),
            "recipe": {"pooling": encoder.recipe.pooling, "normalize": encoder.recipe.normalize,
                       "prefix": encoder.recipe.prefix},
        },
        "data": str(root),
        "settings": {"tasks": list(tasks), "source": source, "seed": seed, "threads": torch.get_num_threads()},
    }
    if sib_langs is not None:
        if head_labels(encoder.path) is not None and not probe:
            report["sib200"] = evaluate_sib200_head(encoder.path, encoder, root, sib_langs)
        else:
            report["sib200"] = evaluate_sib200(encoder, root, sib_langs, source=source, seed=seed)
    if tat_langs:
        report["tatoeba"] = evaluate_tatoeba(encoder, root, tat_langs)
    if hasattr(encoder, "mean_experts"):  # a routed model: what the routing cost
        report["model"]["routing"] = {"routing": encoder.routing, "experts": encoder.routed.names,
                                      "mean_experts": encoder.mean_experts,
                                      "sentences_per_expert": dict(zip(encoder.routed.names, encoder.experts_run.tolist()))}
    if getattr(encoder, "truncated", 0):  # a bundle cut texts longer than its largest bucket, as a device would
        report["model"]["truncated_texts"] = encoder.truncated
    report["elapsed_s"] = round(time.perf_counter() - started, 2)
    return report
