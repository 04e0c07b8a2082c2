"""Routing over whole specialists: each expert a complete model (a bilingual BiStil student, with its own
trimmed vocabulary, tokenizer and depth), plus a general expert for everything else, and a SCAR router on
character n-grams (`routing.front`) that picks experts before any of them runs.
`build_specialists` writes the folder, `Specialists.load` reads it.

Folder layout (what `edgelm route build` writes):
    routed.json          design "specialists": experts (general first) and their languages, tau, k_max,
                         the teacher they were all distilled from, the router's n-gram spec and its report
    experts/NAME/        each expert's own checkpoint folder, copied whole
    router.safetensors   the n-gram table, query projection and prototypes; metadata: spec, temperature, experts

The experts' vectors are comparable because every one was distilled toward the same teacher's space:
experts from different teachers (or of different widths) are refused.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir, atomic_write_text
from edgelm.checkpoint import check_checkpoint, read_config
from edgelm.errors import EdgelmError
from edgelm.kernels.charngrams import CharRouterWeights, NgramSpec
from edgelm.kernels.routing import check_options, mix
from edgelm.routing.config import GENERAL
from edgelm.routing.format import ROUTED_FILE, SPECIALISTS_FORMAT, is_routed, safe_name
from edgelm.runtime.specialists import read_router, route_as

# Languages kept out of router training by default: they show where text the router never saw goes.
HELDOUT = ("ind_Latn", "tur_Latn", "vie_Latn", "jpn_Jpan")
# Lines of each --corpus file the router trains on: a few thousand name a language; more only slows the build.
ROUTER_CORPUS_LINES = 2000


def teacher_identity(folder: Path) -> dict:
    """What makes two experts' vectors comparable: the teacher's weights (the hash its conversion recorded)
    and the width of the vectors."""
    config = read_config(folder)
    meta = config.get("edgelm") or {}
    source = (meta.get("source") or {}).get("sha256")
    named = ((meta.get("artifact") or {}).get("provenance") or {}).get("teacher") or (meta.get("distilled") or {}).get("teacher")
    return {"teacher": source or named, "hidden_size": config.get("hidden_size")}


def _languages(folder: Path) -> list[str]:
    meta = read_config(folder).get("edgelm") or {}
    return list(((meta.get("artifact") or {}).get("provenance") or {}).get("languages")
                or (meta.get("distilled") or {}).get("languages") or [])


def check_experts(experts: dict[str, Path], general: Path | None) -> dict:
    """Refuse what cannot be routed together; returns the shared teacher identity."""
    if general is None:
        raise EdgelmError("routing over specialists needs a general expert (--general: a multi-target student, or "
                          "the teacher) for the text no specialist masters")
    if not experts:
        raise EdgelmError("give at least one specialist (--expert LANGUAGE=FOLDER)")
    folders = {GENERAL: Path(general), **{k: Path(v) for k, v in experts.items()}}
    for name, folder in folders.items():
        if is_routed(folder):
            raise EdgelmError(f"expert {name}: {folder} is a routed model; experts are single models")
        try:
            check_checkpoint(folder)
        except EdgelmError as exc:
            raise EdgelmError(f"expert {name}: {exc}") from None
    ids = {name: teacher_identity(folder) for name, folder in folders.items()}
    first = ids[GENERAL]
    for name, ident in ids.items():
        if ident["teacher"] != first["teacher"] or ident["hidden_size"] != first["hidden_size"]:
            raise EdgelmError(f"expert {name} ({folders[name]}) was distilled from another teacher than the general expert "
                              f"({ident['teacher']!s:.16}, width {ident['hidden_size']} vs {first['teacher']!s:.16}, width "
                              f"{first['hidden_size']}): their vectors are not comparable")
    for lang, folder in experts.items():
        langs = _languages(Path(folder))
        if langs and lang not in langs:
            raise EdgelmError(f"expert {lang}: {folder} was distilled for {', '.join(langs)}, not {lang}")
    return first


def router_text(data_root: Path, names: list[str], heldout: tuple[str, ...],
                corpus: dict[str, list[Path]] | None = None,
                corpus_lines: int = ROUTER_CORPUS_LINES) -> tuple[list[str], list[int], list[str], dict]:
    """SIB-200 train+dev sentences of every language but the held-out ones, plus the first `corpus_lines`
    lines of each `corpus` language (its evaluation sentences removed), each labelled with its expert (an
    expert's language) or the general expert (every other language, the source included). Returns the
    texts, labels, the SIB-200 languages used and what each corpus gave."""
    from edgelm.data.corpus import iter_corpus
    from edgelm.data.sib200 import load_sib200, sib200_languages
    from edgelm.distillation.run import evaluation_sentences

    def label(lang: str) -> int:
        return names.index(lang) if lang in names else names.index(GENERAL)

    texts, labels, langs = [], [], []
    for lang in sib200_languages(data_root):
        if lang in heldout:
            continue
        langs.append(lang)
        for split in ("train", "dev"):
            rows = load_sib200(data_root, lang, split)
            texts += [r.text for r in rows]
            labels += [label(lang)] * len(rows)
    report = {}
    for lang, paths in (corpus or {}).items():
        skip, got, removed = evaluation_sentences(data_root, lang), [], 0
        for path in paths:
            for line in iter_corpus(path):
                if len(got) >= corpus_lines:
                    break
                if line in skip:
                    removed += 1
                else:
                    got.append(line)
        texts += got
        labels += [label(lang)] * len(got)
        report[lang] = {"files": [str(p) for p in paths], "sentences": len(got), "evaluation_sentences_removed": removed,
                        "expert": names[label(lang)]}
    return texts, labels, langs, report


def score_router(w: CharRouterWeights, data_root: Path, names: list[str], tau: float, k_max: int) -> dict:
    """On SIB-200 test sentences (never trained on): the share each language sends to its expert (general for
    languages without one), and the experts each runs."""
    from edgelm.data.sib200 import load_sib200, sib200_languages

    out = {}
    for lang in sib200_languages(data_root):
        rows = load_sib200(data_root, lang, "test")
        want = names.index(lang) if lang in names else names.index(GENERAL)
        got = w.route([r.text for r in rows], tau, k_max)
        out[lang] = {"right": round(float((got["weights"].argmax(1) == want).mean()), 4),
                     "mean_experts": round(float(got["chosen"].sum(1).mean()), 3), "sentences": len(rows)}
    return out


def build_specialists(experts: dict[str, Path], general: Path | None, out: Path, *, data_root: Path,
                      heldout: tuple[str, ...] = HELDOUT, tau: float = 0.9, k_max: int = 1, router_steps: int = 1500,
                      corpus: dict[str, list[Path]] | None = None, corpus_lines: int = ROUTER_CORPUS_LINES,
                      seed: int = 0, overwrite: bool = False) -> dict:
    """Write the routed folder of `experts` (language -> checkpoint folder) and `general` at `out` (atomically):
    copies of the experts and a character-n-gram router trained on SIB-200's train+dev text and on `corpus`
    (language -> text files: more text for an expert, or languages no expert has, which teach the router
    what belongs to the general expert). Returns routed.json."""
    from safetensors.numpy import save_file

    from edgelm.routing.front import fit_char_router
    from edgelm.version import __version__

    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgelmError(f"{out} exists; choose another --out or pass --overwrite")
    names = [GENERAL, *experts]
    check_options(len(names), tau, k_max)
    if router_steps < 1:
        raise EdgelmError("--router-steps must be at least 1")
    if corpus_lines < 1:
        raise EdgelmError("--corpus-lines must be at least 1")
    clash = sorted(set(corpus or {}) & set(heldout))
    if clash:
        raise EdgelmError(f"--corpus {clash[0]}: that language is held out of router training (--heldout)")
    identity = check_experts(experts, general)
    folders = {GENERAL: Path(general), **{k: Path(v) for k, v in experts.items()}}
    started = time.perf_counter()
    texts, labels, seen, corpora = router_text(data_root, names, tuple(heldout), corpus, corpus_lines)
    missing = [lang for lang in experts if lang not in seen]
    if missing:
        raise EdgelmError(f"no router training text for {missing[0]} in {data_root / 'sib200'} (or it is held out)")
    spec = NgramSpec()
    router, losses = fit_char_router(texts, labels, len(names), spec=spec, steps=router_steps, tau=tau, seed=seed)
    weights = router.weights()
    meta = {"format": SPECIALISTS_FORMAT, "design": "specialists", "edgelm_version": __version__, "experts": names,
            "general": 0, "languages": {n: _languages(folders[n]) for n in names}, "tau": tau, "k_max": k_max,
            "teacher": identity["teacher"], "hidden_size": identity["hidden_size"], "ngrams": spec.as_dict(),
            "sources": {n: str(f) for n, f in folders.items()},
            "router": {"steps": router_steps, "trained_on": seen, "heldout": list(heldout), "corpora": corpora,
                       "first_loss": round(float(np.mean(losses[:20])), 4), "last_loss": round(float(np.mean(losses[-20:])), 4),
                       "test": score_router(weights, data_root, names, tau, k_max)},
            "wall_seconds": round(time.perf_counter() - started, 1)}
    with atomic_dir(out, replace=overwrite) as tmp:
        (tmp / "experts").mkdir()
        for name, folder in folders.items():
            shutil.copytree(folder, tmp / "experts" / safe_name(name),
                            ignore=shutil.ignore_patterns("checkpoints", "*.csv", ".*"))
        save_file({k: v.numpy() for k, v in router.state().items()}, str(tmp / "router.safetensors"),
                  metadata={"ngrams": json.dumps(spec.as_dict()), "temperature": str(router.scar.temperature),
                            "experts": json.dumps(names)})
        atomic_write_text(tmp / ROUTED_FILE, json.dumps(meta, indent=1))
        Specialists.load(tmp)
    return meta


@dataclass
class Specialists:
    """A loaded specialists folder: the experts (each `edgelm.load`-ed from its own folder) and the router."""

    path: Path
    meta: dict
    experts: list
    router: CharRouterWeights

    @property
    def names(self) -> list[str]:
        return list(self.meta["experts"])

    @classmethod
    def load(cls, path: str | Path) -> Specialists:
        from edgelm.encoder import Encoder

        path = Path(path)
        try:
            meta = json.loads((path / ROUTED_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise EdgelmError(f"{path / ROUTED_FILE} is missing or corrupt (not JSON)") from None
        if not isinstance(meta, dict) or meta.get("format") != SPECIALISTS_FORMAT:
            raise EdgelmError(f"{path} is routed-model format {meta.get('format') if isinstance(meta, dict) else '?'!r}; this reader takes {SPECIALISTS_FORMAT}")
        names = meta["experts"]
        folders = {n: path / "experts" / safe_name(n) for n in names}
        check_experts({n: f for n, f in folders.items() if n != GENERAL}, folders[GENERAL])
        return cls(path, meta, [Encoder.load(folders[n]) for n in names], read_router(path / "router.safetensors", names))

    def choose(self, texts: list[str], routing: str = "learned", *, language: str | None = None,
               tau: float | None = None, k_max: int | None = None) -> dict[str, np.ndarray]:
        """Which experts each text runs and with what weight: the learned router, the true language (oracle),
        every expert (dense) or one expert by name."""
        tau = self.meta["tau"] if tau is None else tau
        k_max = self.meta["k_max"] if k_max is None else k_max
        out = self.router.route(texts, tau, k_max)
        if routing == "oracle":  # the true language's expert; languages without one: the general expert
            if language is None:
                raise EdgelmError("oracle routing needs each text's language; this evaluation does not give it")
            routing = language if language in self.names else GENERAL
        elif routing not in ("learned", "dense") and routing not in self.names:
            raise EdgelmError(f"unknown routing {routing!r}; use learned, oracle, dense or an expert: {', '.join(self.names)}")
        return route_as(out, routing, self.names)

    def embed(self, texts: list[str], routing: str = "learned", *, language: str | None = None,
              batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Sentence vectors (each expert embeds the rows that chose it, with its own tokenizer) and the
        (texts, experts) mask of experts that ran."""
        pick = self.choose(texts, routing, language=language)
        vectors = mix(pick["chosen"], pick["mixing"].astype(np.float32),
                      lambda e, rows: self.experts[e].embed([texts[i] for i in rows], batch_size=batch_size),
                      self.experts[0].recipe.normalize)
        return vectors.astype(np.float32), pick["chosen"]


class SpecialistsEncoder:
    """A specialists folder behind the `Embedder` contract, so `edgelm eval` and `--domains` score it under any
    routing; counts the experts each sentence ran."""

    def __init__(self, model: Specialists, routing: str):
        if routing not in ("learned", "oracle", "dense") and routing not in model.names:
            raise EdgelmError(f"unknown routing {routing!r} for {model.path}; use learned, oracle, dense or one expert: "
                              f"{', '.join(model.names)}")
        self.model, self.routing = model, routing
        self.experts_run = np.zeros(len(model.names), dtype=np.int64)
        self.sentences = 0

    @classmethod
    def load(cls, path: str | Path, routing: str = "learned") -> SpecialistsEncoder:
        return cls(Specialists.load(path), routing)

    @property
    def recipe(self):
        return self.model.experts[0].recipe

    def embed(self, texts: list[str], *, batch_size: int = 64, progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, int(self.model.meta["hidden_size"])), dtype=np.float32)
        vectors, chosen = self.model.embed(texts, self.routing, language=language, batch_size=batch_size)
        self.experts_run += chosen.sum(0)
        self.sentences += len(texts)
        return vectors

    def describe(self) -> dict:
        names = self.model.names
        params = {n: e.num_parameters for n, e in zip(names, self.model.experts)}
        return {"path": str(self.model.path), "kind": "routed", "design": "specialists", "experts": names,
                "parameters": sum(params.values()), "parameters_per_expert": params,
                "vocab_size": {n: e.model.config.vocab_size for n, e in zip(names, self.model.experts)},
                "recipe": self.recipe.as_dict(),
                "routing": {"routing": self.routing, "experts": names,
                            "mean_experts": float(self.experts_run.sum() / max(1, self.sentences)),
                            "sentences_per_expert": dict(zip(names, self.experts_run.tolist()))}}
