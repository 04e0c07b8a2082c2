"""Cross-expert drift in a specialists routed model: a Tatoeba pair whose two sides run on different
experts (the target sentence on its specialist, the English one on the general expert), and whether a
linear map of each expert into the teacher's space, fitted on anchor text, brings them back together.

    python -m edgelm.benchmarks.experiments.drift [--routed runs/bench-route-spec/specialists]

For each specialist language with Tatoeba data, retrieval accuracy (both directions, averaged) of:
- the specialist alone (both sides on it: what `specialist LANG` scores);
- English on the general expert (what SCAR's routing does to a pair);
- English on the teacher (the general expert's weakness taken out);
and the last two again after mapping every expert's vectors into the teacher's space with a map fitted
on anchor text of the expert's languages: least squares (ridge) and orthogonal (Procrustes). Anchor
text: SIB-200 train+dev of the expert's languages and, where `corpus/` has the language, its first
lines (the corpora hold no evaluation sentence); for the general expert, half as many SIB-200 sentences
of each language its router trained on. Results: bench/results/route-drift.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def ridge_map(x: np.ndarray, t: np.ndarray, lam: float = 0.01) -> np.ndarray:
    """Least-squares affine map x -> t (rows: sentences), ridge `lam` on the weights."""
    x1 = np.hstack([x, np.ones((len(x), 1), x.dtype)])
    reg = lam * np.eye(x1.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(x1.T @ x1 + reg, x1.T @ t)


def orthogonal_map(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The rotation that best takes x onto t (Procrustes)."""
    u, _, vt = np.linalg.svd(x.T @ t)
    return u @ vt


def apply_map(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    if w.shape[0] == x.shape[1] + 1:
        x = np.hstack([x, np.ones((len(x), 1), x.dtype)])
    return _unit(x @ w)


def anchor_text(root: Path, languages: list[str], per_language: int, corpus_lines: int) -> list[str]:
    from edgelm.data.corpus import read_corpus
    from edgelm.data.sib200 import load_sib200, sib200_languages

    have = set(sib200_languages(root))
    texts = []
    for lang in languages:
        if lang in have:
            texts += [r.text for split in ("train", "dev") for r in load_sib200(root, lang, split)][:per_language]
        path = root / "corpus" / f"{lang}.txt.gz"
        if corpus_lines and path.is_file():
            texts += read_corpus(path, max_lines=corpus_lines).lines
    return texts


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--routed", type=Path, default=Path("runs/bench-route-spec/specialists"))
    ap.add_argument("--teacher", default="e5-small")
    ap.add_argument("--per-language", type=int, default=800, help="SIB-200 anchor sentences per language")
    ap.add_argument("--corpus-lines", type=int, default=2000, help="corpus/ anchor lines per language that has one")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-route-drift"))
    args = ap.parse_args(argv)

    from edgelm.benchmarks.harness import save_results
    from edgelm.data.locate import data_root
    from edgelm.data.tatoeba import load_tatoeba, tatoeba_languages
    from edgelm.encoder import Encoder
    from edgelm.evaluation.tatoeba import retrieval_accuracy
    from edgelm.routing.specialists import Specialists
    from edgelm.teacher.registry import resolve_model

    started = time.perf_counter()
    root = data_root(args.data)
    routed = Specialists.load(args.routed)
    names, langs_of = routed.names, routed.meta["languages"]
    general = routed.experts[0]
    teacher = Encoder.load(resolve_model(args.teacher))

    def embed(model, texts):
        return _unit(model.embed(texts, batch_size=64))

    def score(a, b) -> float:
        return round(float(np.mean(retrieval_accuracy(a, b))), 4)

    def maps(model, languages, per_language, corpus_lines):
        texts = anchor_text(root, languages, per_language, corpus_lines)
        x, t = embed(model, texts), embed(teacher, texts)
        return {"least squares": ridge_map(x, t), "orthogonal": orthogonal_map(x, t)}, len(texts)

    general_langs = [lang for lang in langs_of[names[0]] if lang in routed.meta["router"]["trained_on"]]
    # the general expert's many languages: SIB-200 text only, fewer per language
    general_maps, general_anchors = maps(general, general_langs, args.per_language // 2, 0)
    rows, have = {}, set(tatoeba_languages(root))
    for name, expert in zip(names[1:], routed.experts[1:]):
        if name not in have:
            continue
        print(f"drift: {name}", flush=True)
        src, eng = load_tatoeba(root, name)
        x, e_self, e_gen, e_teacher = embed(expert, src), embed(expert, eng), embed(general, eng), embed(teacher, eng)
        expert_maps, anchors = maps(expert, langs_of[name], args.per_language, args.corpus_lines)
        row = {"sentences": len(src), "anchors": anchors, "specialist alone": score(x, e_self),
               "English on the general expert": score(x, e_gen), "English on the teacher": score(x, e_teacher)}
        for kind, w in expert_maps.items():
            row[f"English on the general expert, {kind} maps"] = score(apply_map(w, x), apply_map(general_maps[kind], e_gen))
            row[f"English on the teacher, {kind} map"] = score(apply_map(w, x), e_teacher)
            row[f"specialist alone, {kind} map"] = score(apply_map(w, x), apply_map(w, e_self))
        rows[name] = row
    res = {"routed": str(args.routed), "teacher": args.teacher, "general_anchors": general_anchors,
           "general_anchor_languages": general_langs, "rows": rows,
           "wall_seconds": round(time.perf_counter() - started, 1)}
    cols = list(next(iter(rows.values())))[2:]
    md = ["| Tatoeba pair | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    md += [f"| {c} | " + " | ".join(f"{r[c]:.3f}" for r in rows.values()) + " |" for c in cols]
    md = "\n".join(md) + "\n"
    save_results(res, md, args.out, "route-drift", kind="route-drift")
    print(md)
    return res


if __name__ == "__main__":
    main()
