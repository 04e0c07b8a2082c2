"""`edgelm route train`: split a multi-target student into a shared body and per-domain experts, then
train the SCAR router over them.

The student's top `expert_layers` layers become the experts: the general expert keeps them as
distilled; each domain expert is a copy trained further by distillation from the teacher on the
source language and that domain's text (a bilingual BiStil specialist of the top layers, with the
parallel-sentence anchor), while the body stays frozen, shared and exact. Body states and teacher
targets are computed once per sentence, so training an expert costs only its own layers.

The router learns, from the same (body) states, which expert each text belongs to: domain text to its
expert, source-language text (and any `general_languages`' text) to the general expert; plus the
load-balancing term. A tenth of each domain's text is held out to measure how well it identifies
the domain.

Domains are languages (an expert per target language of the body) or SIB-200's topics (an expert per
topic, trained on that topic's train/dev text in every language of the body, the target rows anchored
to their English translation). Every text has a topic, so a topic model has no general class: it runs
without the general expert, or with it always on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgelm.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import masked_mean_torch
from edgelm.kernels.routing import check_options
from edgelm.progress import progress_bar
from edgelm.route.model import FORMAT, ROUTED_FILE, ExpertStack, RoutedModel, body_fingerprint, expert_file

GENERAL = "general"
GROUPINGS = ("languages", "topics")


@dataclass(frozen=True)
class RouteConfig:
    domains: tuple[str, ...]  # one expert each: languages of the body, or SIB-200 topics
    source: str = "eng_Latn"
    grouping: str = "languages"  # what a domain is: a language, or a SIB-200 topic
    expert_layers: int = 1  # top layers of the student that become the experts
    general: bool = True  # keep the student's own top layers as a general expert
    always_general: bool = False  # run the general expert for every input (weight counts first toward tau)
    general_languages: tuple[str, ...] = ()  # more text the router learns to send to the general expert
    steps: int = 600  # expert distillation steps (alternating source / domain batches)
    batch_size: int = 16
    lr: float = 1e-4
    warmup: float = 0.05  # share of the expert steps with linear warm-up, then linear decay to 0
    max_length: int = 128
    alpha_parallel: float = 1.0
    router_steps: int = 600
    router_lr: float = 3e-3
    balance: float = 0.01  # weight of the load-balancing term
    key_dim: int = 64
    temperature: float = 1.0
    tau: float = 0.9
    k_max: int = 2
    heldout: float = 0.1  # share of each language's text held out to score the router
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def experts(self) -> list[str]:
        return ([GENERAL] if self.general else []) + list(self.domains)

    def check(self) -> None:
        if len(self.domains) < 2:
            raise EdgelmError(f"routing needs at least two domains, got {len(self.domains)}: {', '.join(self.domains) or 'none'}")
        if len({expert_file(d) for d in self.domains} | {expert_file(GENERAL)}) != len(self.domains) + 1:
            raise EdgelmError("a domain is named twice (or as `general`, or two names differ only in punctuation)")
        if self.grouping not in GROUPINGS:
            raise EdgelmError(f"unknown domain grouping {self.grouping!r}; use {', '.join(GROUPINGS)}")
        if self.grouping == "languages" and self.source in self.domains:
            raise EdgelmError(f"{self.source} is the source language; the general expert covers it, not a domain")
        if (self.always_general or self.general_languages) and not self.general:
            raise EdgelmError("--always-general and --general-languages need the general expert (drop --no-general)")
        if self.grouping == "topics" and self.general_languages:
            raise EdgelmError("--general-languages is for language domains; with topics every text has a topic")
        if self.grouping == "topics" and self.general and not self.always_general:
            raise EdgelmError("with topic domains every text has a topic, so no text would teach the router the general "
                              "expert: pass --no-general, or --always-general to run it beside the topic experts")
        clash = set(self.general_languages) & ({self.source} | set(self.domains))
        if clash:
            raise EdgelmError(f"{sorted(clash)[0]} is a domain or the source, not a general language")
        for name in ("steps", "batch_size", "router_steps", "expert_layers", "key_dim"):
            if getattr(self, name) < 1:
                raise EdgelmError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 < self.heldout < 0.5:
            raise EdgelmError("--heldout must be a share in (0, 0.5)")
        check_options(len(self.experts), self.tau, self.k_max, 0 if self.always_general else None)

    def identity(self) -> dict:
        d = asdict(self)
        d["domains"], d["general_languages"] = list(d["domains"]), list(d["general_languages"])
        return d


@dataclass
class _Text:
    """Cached per-sentence tensors of one language: body states, teacher last states, anchors."""

    body: list[torch.Tensor]
    teacher: list[torch.Tensor]
    anchor: torch.Tensor  # (n, hidden) teacher embedding of the source version; zeros when none
    has_anchor: torch.Tensor  # (n,) bool

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(self.body[i].shape[0] for i in idx)
        hid = self.body[0].shape[1]
        b = torch.zeros(len(idx), width, hid)
        t = torch.zeros(len(idx), width, hid)
        m = torch.zeros(len(idx), width, dtype=torch.long)
        for k, i in enumerate(idx):
            n = self.body[i].shape[0]
            b[k, :n], t[k, :n], m[k, :n] = self.body[i], self.teacher[i], 1
        return b, t, m


def open_student(student: Path) -> tuple[Path, Path, dict]:
    """(run folder, phase-1 student folder, run.json) for a distillation run or its `general/` folder."""
    student = Path(student)
    run = student.parent if (student / "config.json").is_file() and (student.parent / "run.json").is_file() else student
    if not (run / "run.json").is_file() or not (run / "general" / "model.safetensors").is_file():
        raise EdgelmError(f"{student} is not a finished `edgelm distill` run (needs run.json and general/)")
    if not (run / "vocab.json").is_file():
        raise EdgelmError(f"{run} has no vocab.json: cannot map its tokens to the teacher's")
    return run, run / "general", json.loads((run / "run.json").read_text())


def split_student(student, expert_layers: int):
    """(body, top layers): the student's lower layers as a BertModel, its top layers as an ExpertStack."""
    from transformers import BertModel

    depth = student.config.num_hidden_layers
    if not 1 <= expert_layers < depth:
        raise EdgelmError(f"--expert-layers must leave the body at least one layer: the student has {depth}")
    cfg = copy.deepcopy(student.config)
    cfg.num_hidden_layers = depth - expert_layers
    body = BertModel(cfg, add_pooling_layer=False)
    body.load_state_dict({k: v for k, v in student.state_dict().items()
                          if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < cfg.num_hidden_layers})
    top = ExpertStack(student.config, expert_layers)
    top_state = {}
    for key, value in student.state_dict().items():
        if key.startswith("encoder.layer."):
            i, rest = int(key.split(".")[2]), key.split(".", 3)[3]
            if i >= cfg.num_hidden_layers:
                top_state[f"{i - cfg.num_hidden_layers}.{rest}"] = value
    top.layers.load_state_dict(top_state)
    return body.eval(), top.eval()


@torch.no_grad()
def _cache(texts_ids: list[list[int]], body, teacher, to_teacher: torch.Tensor, pad_id: int,
           label: str, batch: int = 32) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
    """Body states, teacher last states and teacher sentence embeddings of every sentence
    (body states only when `teacher` is None: text the router sees but no expert trains on)."""
    b_out, t_out, t_emb = [], [], []
    with progress_bar(f"caching {label}", len(texts_ids), "sent") as advance:
        for start in range(0, len(texts_ids), batch):
            rows = texts_ids[start : start + batch]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for k, r in enumerate(rows):
                ids[k, : len(r)], mask[k, : len(r)] = torch.tensor(r), 1
            bh = body(input_ids=ids, attention_mask=mask).last_hidden_state
            for k, r in enumerate(rows):
                b_out.append(bh[k, : len(r)].clone())
            if teacher is not None:
                th = teacher(input_ids=to_teacher[ids], attention_mask=mask).last_hidden_state
                t_emb.append(masked_mean_torch(th, mask))
                t_out += [th[k, : len(r)].clone() for k, r in enumerate(rows)]
            advance(len(rows))
    return b_out, t_out, (torch.cat(t_emb) if t_emb else None)


def _expert_loss(expert, text: _Text, idx, cfg: RouteConfig) -> torch.Tensor:
    b, t, m = text.batch(idx)
    h = expert(b, m)
    mk = m.unsqueeze(-1).float()
    loss = (((h - t) ** 2) * mk).sum() / (mk.sum() * h.shape[-1])  # hidden-state MSE to the teacher's top layer
    s_vec, t_vec = masked_mean_torch(h, m), masked_mean_torch(t, m)
    loss = loss + (1 - F.cosine_similarity(s_vec, t_vec, dim=-1)).mean()
    if cfg.alpha_parallel:
        keep = text.has_anchor[torch.as_tensor(idx)]
        if keep.any():
            a = text.anchor[torch.as_tensor(idx)][keep]
            loss = loss + cfg.alpha_parallel * (1 - F.cosine_similarity(s_vec[keep], a, dim=-1)).mean()
    return loss


def train_expert(top, texts: dict[str, _Text], keys: list[str], name: str, train_idx: dict[str, np.ndarray],
                 cfg: RouteConfig) -> tuple[ExpertStack, dict]:
    """A copy of the top layers distilled on the text of `keys` (batches alternating between them):
    source + the language for a language expert, the topic's text for a topic expert."""
    from edgelm.distill.batches import BalancedBatches
    from edgelm.distill.general import lr_at
    torch.manual_seed(cfg.seed)
    expert = copy.deepcopy(top).train()
    opt = torch.optim.AdamW(expert.parameters(), lr=cfg.lr)
    sizes = {key: len(train_idx[key]) for key in keys}
    batches = BalancedBatches(sizes, cfg.batch_size, cfg.seed)
    started, losses = time.perf_counter(), []
    with progress_bar(f"expert {name}", cfg.steps, "step") as advance:
        for step in range(cfg.steps):
            key, local = batches(step)
            loss = _expert_loss(expert, texts[key], train_idx[key][local], cfg)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            advance(1, info=f"loss {loss.item():.4f}")
    w = max(1, min(20, cfg.steps // 4))  # loss averaged over the first and last steps
    return expert.eval(), {"steps": cfg.steps, "first_loss": round(float(np.mean(losses[:w])), 5),
                           "last_loss": round(float(np.mean(losses[-w:])), 5),
                           "seconds": round(time.perf_counter() - started, 1)}


def _held_out(n: int, share: float, seed: int, lang: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, sum(map(ord, lang))])
    order = rng.permutation(n)
    k = max(1, int(round(n * share)))
    return np.sort(order[k:]), np.sort(order[:k])


def _router_data(texts: dict[str, _Text], idx: dict[str, np.ndarray], label: dict[str, int]):
    rows = [(texts[lang].body[i], label[lang]) for lang in label for i in idx[lang]]
    width = max(r.shape[0] for r, _ in rows)
    h = torch.zeros(len(rows), width, rows[0][0].shape[1])
    m = torch.zeros(len(rows), width, dtype=torch.long)
    for k, (r, _) in enumerate(rows):
        h[k, : r.shape[0]], m[k, : r.shape[0]] = r, 1
    return h, m, torch.tensor([y for _, y in rows])


def _encoders(run: Path, general_dir: Path, student_model, teacher_name: str):
    """What caching needs: the teacher, the student→teacher token map, the recipe, tokenizer and pad id."""
    from tokenizers import Tokenizer

    from edgelm.encoder import EmbeddingRecipe, load_model
    from edgelm.teacher.registry import resolve_model

    teacher = load_model(resolve_model(teacher_name))
    kept = torch.as_tensor(json.loads((run / "vocab.json").read_text())["kept"], dtype=torch.long)
    recipe = EmbeddingRecipe.from_config(student_model.config, str(general_dir))
    return teacher, kept, recipe, Tokenizer.from_file(str(general_dir / "tokenizer.json")), student_model.config.pad_token_id


def cache_texts(cfg: RouteConfig, run: Path, general_dir: Path, student_model, body, teacher_name: str,
                corpora: dict[str, list[str]], pairs: dict[str, list[int]], corpus_report: dict,
                data_root: Path | None, corpora_paths, use_bundled: bool) -> dict[str, _Text]:
    """Body states and teacher targets (anchors included) per language; router-only languages: body states."""
    from edgelm.distill.config import DistillConfig
    from edgelm.distill.general import TokenizedCorpus
    from edgelm.distill.run import collect_corpora

    teacher, kept, recipe, tok, pad = _encoders(run, general_dir, student_model, teacher_name)
    texts: dict[str, _Text] = {}
    src_emb = None
    for lang in [cfg.source, *cfg.domains]:
        ids = TokenizedCorpus.build(tok, corpora[lang], recipe.prefix, cfg.max_length).ids
        b, t, emb = _cache(ids, body, teacher, kept, pad, lang)
        if lang == cfg.source:
            src_emb = emb
            anchor, has = emb, torch.zeros(len(ids), dtype=torch.bool)  # the source is its own anchor: none
        else:
            pos = torch.as_tensor(pairs.get(lang, [-1] * len(ids)), dtype=torch.long)
            has = pos >= 0
            anchor = torch.zeros_like(emb)
            anchor[has] = src_emb[pos[has]]
        texts[lang] = _Text(b, t, anchor, has)
    if cfg.general_languages:
        gcfg = DistillConfig(teacher=teacher_name, source=cfg.source, target=",".join(cfg.general_languages))
        general_corpora, general_report = collect_corpora(gcfg, data_root, corpora_paths or {}, use_bundled)
        corpus_report |= {lang: general_report[lang] for lang in cfg.general_languages}
        for lang in cfg.general_languages:
            ids = TokenizedCorpus.build(tok, general_corpora[lang], recipe.prefix, cfg.max_length).ids
            b, _, _ = _cache(ids, body, None, kept, pad, f"{lang} (router only)")
            texts[lang] = _Text(b, [], torch.zeros(0), torch.zeros(0, dtype=torch.bool))
    return texts


def topic_corpora(root: Path, languages: list[str], topics: tuple[str, ...]) -> dict[str, list]:
    """SIB-200 train + dev rows of each language (never test), checked to cover every topic."""
    from edgelm.data.sib200 import load_sib200, sib200_labels

    have = sib200_labels(root)
    unknown = [t for t in topics if t not in have]
    if unknown:
        raise EdgelmError(f"{unknown[0]!r} is not a SIB-200 topic; they are: {', '.join(have)}")
    rows = {lang: load_sib200(root, lang, "train") + load_sib200(root, lang, "dev") for lang in languages}
    for lang, r in rows.items():
        empty = [t for t in topics if not any(x.label == t for x in r)]
        if empty:
            raise EdgelmError(f"SIB-200 {lang} has no train/dev text for topic {empty[0]!r}")
    return rows


def cache_topic_texts(cfg: RouteConfig, run: Path, general_dir: Path, student_model, body, teacher_name: str,
                      rows: dict[str, list]) -> dict[str, _Text]:
    """Per topic: the body states and teacher targets of its rows in every language, each target row
    anchored to the teacher embedding of its English (source) translation."""
    from edgelm.distill.general import TokenizedCorpus

    teacher, kept, recipe, tok, pad = _encoders(run, general_dir, student_model, teacher_name)
    cached = {}
    for lang, r in rows.items():
        ids = TokenizedCorpus.build(tok, [x.text for x in r], recipe.prefix, cfg.max_length).ids
        cached[lang] = _cache(ids, body, teacher, kept, pad, lang)
    src = {x.index_id: i for i, x in enumerate(rows[cfg.source])}
    src_emb = cached[cfg.source][2]
    texts = {}
    for topic in cfg.domains:
        b, t, anchors, has = [], [], [], []
        for lang, r in rows.items():
            for i, x in enumerate(r):
                if x.label != topic:
                    continue
                b.append(cached[lang][0][i])
                t.append(cached[lang][1][i])
                j = src.get(x.index_id) if lang != cfg.source else None
                anchors.append(src_emb[j] if j is not None else torch.zeros(src_emb.shape[1]))
                has.append(j is not None)
        texts[topic] = _Text(b, t, torch.stack(anchors), torch.tensor(has))
    return texts


def fit_router(cfg: RouteConfig, names: list[str], texts: dict[str, _Text],
               splits: dict[str, tuple[np.ndarray, np.ndarray]], hidden_size: int):
    """Train the router on the training split of every language's body states; score it on the held-out split."""
    from edgelm.kernels.routing import RouterWeights, route_numpy
    from edgelm.route.router import ScarRouter, train_router

    label = {d: names.index(d) for d in cfg.domains}
    if cfg.general and cfg.grouping == "languages":
        label |= {lang: names.index(GENERAL) for lang in (cfg.source, *cfg.general_languages)}
    h, m, y = _router_data(texts, {l: s[0] for l, s in splits.items()}, label)
    torch.manual_seed(cfg.seed)
    router = ScarRouter(hidden_size, len(names), key_dim=cfg.key_dim, temperature=cfg.temperature)
    t0 = time.perf_counter()
    with progress_bar("router", 1, "fit") as advance:
        losses = train_router(router, h, m, y, steps=cfg.router_steps, lr=cfg.router_lr, balance=cfg.balance,
                              seed=cfg.seed)
        advance(1)
    hh, mh, yh = _router_data(texts, {l: s[1] for l, s in splits.items()}, label)
    general_index = names.index(GENERAL) if cfg.always_general else None
    routed = route_numpy(RouterWeights.from_torch(router.eval()), hh.numpy(), mh.numpy(), cfg.tau, cfg.k_max, general_index)
    pred = routed["weights"].argmax(1)
    per_class = {names[c]: round(float((pred[yh.numpy() == c] == c).mean()), 4) for c in sorted(set(y.tolist()))}
    w = max(1, min(20, cfg.router_steps // 4))
    return router, {"steps": cfg.router_steps, "first_loss": round(float(np.mean(losses[:w])), 4),
                    "last_loss": round(float(np.mean(losses[-w:])), 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "heldout_sentences": int(len(yh)), "heldout_accuracy": round(float((pred == yh.numpy()).mean()), 4),
                    "heldout_accuracy_per_expert": per_class,
                    "heldout_mean_experts": round(float(routed["chosen"].sum(1).mean()), 3),
                    "classes": {names[c]: [l for l, v in label.items() if v == c] for c in sorted(set(label.values()))}}


def train_routed(cfg: RouteConfig, student: Path, out: Path, *, data_root: Path | None,
                 corpora_paths: dict[str, list[Path]] | None = None, overwrite: bool = False,
                 use_bundled: bool = True) -> dict:
    """Build the routed model of `student` in `out` (atomically); return its routed.json."""
    from safetensors.torch import load_file, save, save_file

    from edgelm import __version__
    from edgelm.distill.config import DistillConfig
    from edgelm.distill.run import collect_corpora, parallel_pairs
    from edgelm.encoder import load_model

    cfg.check()
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
    if cfg.grouping == "topics":
        rows = topic_corpora(data_root, [cfg.source, *[l for l in languages if l != cfg.source]], cfg.domains)
        corpora = {lang: [x.text for x in r] for lang, r in rows.items()}
        corpus_report = {topic: {lang: sum(x.label == topic for x in r) for lang, r in rows.items()}
                         | {"sources": ["sib200 train+dev"]} for topic in cfg.domains}
    else:
        dcfg = DistillConfig(teacher=teacher_name, source=cfg.source, target=",".join(cfg.domains))
        corpora, corpus_report = collect_corpora(dcfg, data_root, corpora_paths or {}, use_bundled)
        pairs = parallel_pairs(dcfg, data_root, corpora)

    student_model = load_model(general_dir)
    body, top = split_student(student_model, cfg.expert_layers)
    if cfg.grouping == "topics":
        texts = cache_topic_texts(cfg, run, general_dir, student_model, body, teacher_name, rows)
    else:
        texts = cache_texts(cfg, run, general_dir, student_model, body, teacher_name, corpora, pairs, corpus_report,
                            data_root, corpora_paths, use_bundled)
    splits = {lang: _held_out(len(texts[lang].body), cfg.heldout, cfg.seed, lang) for lang in texts}
    train_idx = {lang: s[0] for lang, s in splits.items()}

    experts: dict[str, ExpertStack] = {}
    report: dict = {"experts": {}}
    if cfg.general:
        experts[GENERAL] = top
        report["experts"][GENERAL] = {"steps": 0, "note": "the student's own top layers"}
    fp = body_fingerprint(body)
    work = out.parent / f".{out.name}.experts"  # finished experts survive a kill; a rerun picks them up
    work.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps([cfg.identity(), fp, {lang: corpora[lang] for lang in sorted(corpora)}],
                                    sort_keys=True).encode()).hexdigest()[:16]  # settings, body and the very text
    for domain in cfg.domains:
        done = work / f"{key}.{expert_file(domain)}"
        if done.is_file():
            try:
                experts[domain] = copy.deepcopy(top)
                experts[domain].load_state_dict(load_file(str(done)))
                report["experts"][domain] = json.loads(safe_metadata(done)["report"])
                continue
            except Exception:  # unreadable leftovers are retrained, never trusted
                done.unlink(missing_ok=True)
        keys = [domain] if cfg.grouping == "topics" else [cfg.source, domain]
        experts[domain], report["experts"][domain] = train_expert(top, texts, keys, domain, train_idx, cfg)
        atomic_write_bytes(done, save(_state(experts[domain]), metadata={"report": json.dumps(report["experts"][domain])}))

    names = cfg.experts
    router, report["router"] = fit_router(cfg, names, texts, splits, body.config.hidden_size)

    meta = {"format": FORMAT, "edgelm_version": __version__, "source": cfg.source, "grouping": cfg.grouping,
            "domains": list(cfg.domains),
            "experts": names, "general": names.index(GENERAL) if cfg.general else None,
            "always_general": cfg.always_general, "tau": cfg.tau, "k_max": cfg.k_max,
            "expert_layers": cfg.expert_layers, "body_layers": body.config.num_hidden_layers,
            "body_fingerprint": fp, "student": str(general_dir), "teacher": teacher_name,
            "languages": languages, "config": cfg.identity(), "corpora": corpus_report, "training": report}
    with atomic_dir(out, replace=overwrite) as tmp:
        body.save_pretrained(tmp / "body", safe_serialization=True)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (general_dir / name).is_file():
                (tmp / "body" / name).write_bytes((general_dir / name).read_bytes())
        (tmp / "experts").mkdir()
        for name, expert in experts.items():
            save_file(_state(expert), str(tmp / "experts" / expert_file(name)),
                      metadata={"format": "edgelm.expert/1", "name": name, "layers": str(cfg.expert_layers),
                                "body_fingerprint": fp})
        save_file({k: v.contiguous() for k, v in router.state_dict().items()}, str(tmp / "router.safetensors"),
                  metadata={"temperature": str(cfg.temperature), "experts": json.dumps(names), "body_fingerprint": fp})
        meta["wall_seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_text(tmp / ROUTED_FILE, json.dumps(meta, indent=1))
        RoutedModel.load(tmp)  # what was written loads, pieces agree
    shutil.rmtree(work, ignore_errors=True)
    return meta


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in module.state_dict().items()}


def safe_metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return fh.metadata() or {}
