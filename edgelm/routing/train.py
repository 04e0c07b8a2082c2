"""`edgelm route train`: split a multi-target student into a shared body and per-domain experts, then
train the SCAR router over them.

The student's top `expert_layers` layers become the experts (`split`): the general expert keeps them as
distilled; each domain expert is a copy trained further by distillation from the teacher on its
domain's text (`experts`), while the body stays frozen, shared and exact. Body states and teacher
targets are computed once per sentence (`cache`). The router learns, from the same body states, which
expert each text belongs to, plus the load-balancing term (`router`); a tenth of each group's text is
held out to measure how well it identifies the domain. `model.save_routed` writes the folder.

Domains are languages (an expert per target language of the body, trained on the source and that
language, the router also shown `general_languages` as the general expert's) or SIB-200's topics (an
expert per topic, trained on that topic's train/dev text in every language of the body, the target
rows anchored to their English translation). Every text has a topic, so a topic model has no general
class: it runs without the general expert, or with it always on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_write_bytes
from edgelm.errors import EdgelmError
from edgelm.routing.cache import cache_groups, language_groups, teacher_targets, topic_groups, topic_rows
from edgelm.routing.config import GENERAL, RouteConfig
from edgelm.routing.experts import train_expert
from edgelm.routing.model import ExpertStack, body_fingerprint, expert_file, save_routed, state_tensors
from edgelm.routing.fitting import fit_router
from edgelm.routing.split import open_student, split_student
from edgelm.tensorfile import read_tensors


def held_out(n: int, share: float, seed: int, group: str) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) sentence indices of one group: a fixed share, drawn by (seed, group)."""
    rng = np.random.default_rng([seed, sum(map(ord, group))])
    order = rng.permutation(n)
    k = max(1, int(round(n * share)))
    return np.sort(order[k:]), np.sort(order[:k])


def _groups(cfg: RouteConfig, teacher_name: str, languages: list[str], data_root: Path | None,
            corpora_paths: dict[str, list[Path]], use_bundled: bool) -> tuple[dict, dict]:
    """(groups of sentences, the report of where their text came from) for the configured grouping."""
    from edgelm.distillation.config import DistillConfig
    from edgelm.distillation.run import collect_corpora, parallel_pairs

    if cfg.grouping == "topics":
        rows = topic_rows(data_root, [cfg.source, *[l for l in languages if l != cfg.source]], cfg.domains)
        report = {topic: {lang: sum(x.label == topic for x in r) for lang, r in rows.items()}
                  | {"sources": ["sib200 train+dev"]} for topic in cfg.domains}
        return topic_groups(cfg, rows), report
    dcfg = DistillConfig(teacher=teacher_name, source=cfg.source, target=",".join(cfg.domains))
    corpora, report = collect_corpora(dcfg, data_root, corpora_paths, use_bundled)
    general_corpora = {}
    if cfg.general_languages:
        gcfg = DistillConfig(teacher=teacher_name, source=cfg.source, target=",".join(cfg.general_languages))
        general_corpora, general_report = collect_corpora(gcfg, data_root, corpora_paths, use_bundled)
        report |= {lang: general_report[lang] for lang in cfg.general_languages}
    return language_groups(cfg, corpora, parallel_pairs(dcfg, data_root, corpora), general_corpora), report


def train_routed(cfg: RouteConfig, student: Path, out: Path, *, data_root: Path | None,
                 corpora_paths: dict[str, list[Path]] | None = None, overwrite: bool = False,
                 use_bundled: bool = True) -> dict:
    """Build the routed model of `student` in `out` (atomically); return its routed.json."""
    from safetensors.torch import save

    from edgelm.checkpoint import load_model
    from edgelm.version import __version__

    from edgelm.distillation.hardware import Hardware

    cfg.check()
    hw = Hardware.resolve(cfg.device, cfg.precision)
    out = Path(out)
    if out.exists() and not overwrite:
        raise EdgelmError(f"{out} exists; choose another --out or pass --overwrite")
    run, general_dir, run_info = open_student(student)
    languages = run_info.get("provenance", {}).get("languages") or []
    missing = [d for d in cfg.domains if d not in languages] if cfg.grouping == "languages" else []
    if missing:
        raise EdgelmError(f"the student in {run} was distilled on {', '.join(languages)}, not {missing[0]}: "
                          f"distil a body with --target {','.join(cfg.domains)} first")
    if cfg.source not in languages:
        raise EdgelmError(f"the student was distilled from {languages[0]}, not {cfg.source}")
    if cfg.grouping == "topics" and (data_root is None or corpora_paths):
        raise EdgelmError("topic domains come from SIB-200's labelled train/dev text: give --data, not --corpus")
    started = time.perf_counter()
    teacher_name = run_info["config"]["teacher"]
    groups, corpus_report = _groups(cfg, teacher_name, languages, data_root, corpora_paths or {}, use_bundled)

    student_model = load_model(general_dir)
    body, top = split_student(student_model, cfg.expert_layers)
    texts = cache_groups(groups, teacher_targets(cfg), body=body, run=run, student_dir=general_dir,
                         student_config=student_model.config, teacher_name=teacher_name, max_length=cfg.max_length,
                         hardware=hw)
    splits = {name: held_out(len(texts[name].body), cfg.heldout, cfg.seed, name) for name in texts}
    train_idx = {name: s[0] for name, s in splits.items()}

    experts: dict[str, ExpertStack] = {}
    report: dict = {"experts": {}}
    if cfg.general:
        experts[GENERAL] = top
        report["experts"][GENERAL] = {"steps": 0, "note": "the student's own top layers"}
    fp = body_fingerprint(body)
    work = out.parent / f".{out.name}.experts"  # finished experts survive a kill; a rerun picks them up
    work.mkdir(parents=True, exist_ok=True)
    text_key = {name: [[s.text, s.anchor] for s in sentences] for name, sentences in sorted(groups.items())}
    key = hashlib.sha256(json.dumps([cfg.identity(), fp, text_key],
                                    sort_keys=True).encode()).hexdigest()[:16]  # settings, body and the very text
    for domain in cfg.domains:
        done = work / f"{key}.{expert_file(domain)}"
        if done.is_file():
            try:
                info, state = read_tensors(done, f"expert {domain}")
                experts[domain] = copy.deepcopy(top)
                experts[domain].load_state_dict(state)
                report["experts"][domain] = json.loads(info["report"])
                continue
            except Exception:  # unreadable leftovers are retrained, never trusted
                done.unlink(missing_ok=True)
        keys = [domain] if cfg.grouping == "topics" else [cfg.source, domain]
        experts[domain], report["experts"][domain] = train_expert(top, texts, keys, domain, train_idx, cfg, hw)
        atomic_write_bytes(done, save(state_tensors(experts[domain]),
                                      metadata={"report": json.dumps(report["experts"][domain])}))

    names = cfg.experts
    router, report["router"] = fit_router(cfg, names, texts, splits, body.config.hidden_size)

    meta = {"edgelm_version": __version__, "source": cfg.source, "grouping": cfg.grouping,
            "domains": list(cfg.domains),
            "experts": names, "general": names.index(GENERAL) if cfg.general else None,
            "always_general": cfg.always_general, "tau": cfg.tau, "k_max": cfg.k_max,
            "expert_layers": cfg.expert_layers, "body_layers": body.config.num_hidden_layers,
            "body_fingerprint": fp, "student": str(general_dir), "teacher": teacher_name,
            "languages": languages, "config": cfg.identity(), "corpora": corpus_report, "training": report,
            "wall_seconds": round(time.perf_counter() - started, 1)}
    written = save_routed(out, body=body, tokenizer_dir=general_dir, experts={n: experts[n] for n in names},
                          router=router, meta=meta, replace=overwrite)
    shutil.rmtree(work, ignore_errors=True)
    return written
