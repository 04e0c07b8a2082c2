"""Score matrices for `edgelm metrics`: several models, one score per domain.

Two groupings are built in:
- `languages`: a language is a domain; the score is SIB-200 accuracy (probe trained on the source
  language) or Tatoeba retrieval accuracy (mean of both directions), one task per matrix.
- `topics`: SIB-200's seven topics are the domains; the score of a topic is cross-lingual retrieval
  among that topic's parallel test sentences (each language → the source language, mean over
  languages), so it measures how well a model keeps one topic's meaning across languages.
Or the user's own labelled text (`evaluation.user_domains`): a TSV file or a folder per domain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError

GROUPINGS = ("languages", "topics")


def _embed_by_topic(encoder, rows, lang: str) -> np.ndarray:
    """Vectors of SIB-200 rows, embedded one topic at a time so a topic-routed model's oracle knows it."""
    parts = {}
    for topic in sorted({r.label for r in rows}):
        idx = [i for i, r in enumerate(rows) if r.label == topic]
        parts[topic] = idx, encoder.embed([rows[i].text for i in idx], progress=f"{lang} test, {topic}",
                                          language=lang, topic=topic)
    out = np.zeros((len(rows), next(iter(parts.values()))[1].shape[1]), dtype=np.float32)
    for idx, vecs in parts.values():
        out[idx] = vecs
    return out


def topic_scores(encoder, root: Path, languages: list[str], source: str) -> dict[str, float]:
    """Per topic: mean over languages of language→source retrieval accuracy within the topic."""
    from edgelm.data.sib200 import load_sib200, sib200_labels
    from edgelm.evaluation.tatoeba import retrieval_accuracy

    src_list = load_sib200(root, source, "test")
    src_vecs = dict(zip([r.index_id for r in src_list], _embed_by_topic(encoder, src_list, source)))
    per_topic: dict[str, list[float]] = {t: [] for t in sib200_labels(root)}
    for lang in [l for l in languages if l != source]:
        rows = [r for r in load_sib200(root, lang, "test") if r.index_id in src_vecs]
        vecs = _embed_by_topic(encoder, rows, lang)
        for topic in per_topic:
            idx = [i for i, r in enumerate(rows) if r.label == topic]
            if len(idx) < 2:
                continue
            a = vecs[idx]
            b = np.stack([src_vecs[rows[i].index_id] for i in idx])
            per_topic[topic].append(retrieval_accuracy(a, b)[0])
    empty = [t for t, v in per_topic.items() if not v]
    if empty:
        raise EdgelmError(f"SIB-200 topic {empty[0]!r} has fewer than two parallel test sentences in these languages")
    return {t: float(np.mean(v)) for t, v in per_topic.items()}


def domain_matrix(models: list[str], grouping: str, *, task: str = "sib200", languages: list[str] | None = None,
                  source: str = "eng_Latn", data: str | Path | None = None, threads: int | None = None) -> dict:
    """A score matrix (the JSON layout `edgelm metrics` reads) for `models` over the grouping's domains."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import resolve_sib200_language, sib200_languages

    if not models:
        raise EdgelmError("give at least one model")
    scores: dict[str, list[float]] = {}
    if grouping not in GROUPINGS:  # the user's own domains: a TSV file or a folder per domain
        from edgelm.artifacts import load
        from edgelm.evaluation.user_domains import load_user_domains, user_domain_scores

        if not Path(grouping).exists():
            raise EdgelmError(f"unknown domain grouping {grouping!r}; use {', '.join(GROUPINGS)}, a TSV file "
                              "(text, label, domain, split) or a folder with one train.tsv/test.tsv folder per domain")
        rows = load_user_domains(grouping)
        for model in models:
            got = user_domain_scores(load(model, threads=threads), rows)
            scores[model] = [got[d] for d in rows]
        return {"domains": list(rows), "scores": scores, "grouping": str(grouping),
                "score": f"probe accuracy per domain (probe trained on the training rows of every domain in {grouping})"}
    root = data_root(data)
    if grouping == "languages":
        from edgelm.evaluation import evaluate_model

        domains: list[str] = []
        for model in models:
            report = evaluate_model(model, tasks=[task], languages=languages, source=source, data=root, threads=threads)
            got = {s["language"]: s.get("score", s.get("accuracy")) for s in report[task]["scores"]}
            domains = domains or list(got)
            scores[model] = [got[d] for d in domains]
        name = (f"{report[task].get('scorer', 'accuracy')} on {task} per language" if task not in ("sib200", "tatoeba")
                else f"{task} accuracy per language" + (f" (probe trained on {source})" if task == "sib200" else ""))
    else:
        from edgelm.artifacts import load

        if task != "sib200":
            raise EdgelmError("topic domains come from SIB-200; use --task sib200 with --domains topics")
        source = resolve_sib200_language(root, source)
        langs = [resolve_sib200_language(root, l) for l in languages] if languages else sib200_languages(root)
        domains = []
        for model in models:
            got = topic_scores(load(model, threads=threads), root, langs, source)
            domains = domains or list(got)
            scores[model] = [got[d] for d in domains]
        name = f"SIB-200 topic retrieval (language → {source} within each topic, mean over {len(langs) - 1} languages)"
    return {"domains": domains, "scores": scores, "grouping": grouping, "score": name, "data": str(root)}
