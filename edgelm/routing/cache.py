"""What routing trains on, computed once: per group of text, the frozen body's token states and the
teacher's targets, whatever the groups are (languages or topics).

A group is a list of `Sentence`s: its text and, optionally, its source-language translation (the
parallel anchor: the expert's sentence vector is pulled toward the teacher's embedding of it).
`language_groups` and `topic_groups` build the groups of the two built-in groupings; `cache_groups`
is the one caching path for any of them. Body states and teacher targets are computed once per
sentence, so training an expert costs only its own layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import masked_mean_torch
from edgelm.progress import progress_bar
from edgelm.routing.config import GENERAL, RouteConfig


@dataclass(frozen=True)
class Sentence:
    text: str
    anchor: str | None = None  # its translation in the source language, when known


@dataclass
class CachedText:
    """Cached per-sentence tensors of one group: body states, teacher last states, anchors."""

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


def language_groups(cfg: RouteConfig, corpora: dict[str, list[str]], pairs: dict[str, list[int]],
                    general_corpora: dict[str, list[str]]) -> dict[str, list[Sentence]]:
    """A group per language: the source, each domain (anchored to its translation where SIB-200's
    parallel rows give one), and the router-only `general_languages`."""
    source = corpora[cfg.source]
    groups = {cfg.source: [Sentence(t) for t in source]}
    for lang in cfg.domains:
        where = pairs.get(lang, [-1] * len(corpora[lang]))
        groups[lang] = [Sentence(t, source[j] if j >= 0 else None) for t, j in zip(corpora[lang], where)]
    for lang in cfg.general_languages:
        groups[lang] = [Sentence(t) for t in general_corpora[lang]]
    return groups


def topic_rows(root: Path, languages: list[str], topics: tuple[str, ...]) -> dict[str, list]:
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


def topic_groups(cfg: RouteConfig, rows: dict[str, list]) -> dict[str, list[Sentence]]:
    """A group per topic: its rows in every language, each target row anchored to its English (source) version."""
    translation = {x.index_id: x.text for x in rows[cfg.source]}
    return {topic: [Sentence(x.text, translation.get(x.index_id) if lang != cfg.source else None)
                    for lang, r in rows.items() for x in r if x.label == topic] for topic in cfg.domains}


def router_classes(cfg: RouteConfig, names: list[str]) -> dict[str, int]:
    """Which expert the router must learn to pick for each group's text."""
    label = {d: names.index(d) for d in cfg.domains}
    if cfg.general and cfg.grouping == "languages":
        label |= {lang: names.index(GENERAL) for lang in (cfg.source, *cfg.general_languages)}
    return label


def teacher_targets(cfg: RouteConfig) -> set[str]:
    """The groups experts train on (the rest, `general_languages`, only teach the router)."""
    return set(cfg.domains) | ({cfg.source} if cfg.grouping == "languages" else set())


@torch.no_grad()
def _cache(corpus, body, teacher, to_teacher: torch.Tensor, pad_id: int,
           label: str, batch: int = 32, hw=None) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor | None]:
    """Body states, teacher last states and teacher sentence embeddings of every sentence of `corpus`
    (body states only when `teacher` is None: text the router sees but no expert trains on)."""
    b_out, t_out, t_emb = [], [], []
    with progress_bar(f"caching {label}", len(corpus), "sent") as advance:
        for start in range(0, len(corpus), batch):
            rows = corpus.lengths(np.arange(start, min(start + batch, len(corpus)))).tolist()
            ids, mask = (x.to(hw.device) for x in corpus.batch(np.arange(start, start + len(rows)), pad_id))
            if body is not None:
                with hw.precision.autocast():
                    bh = body(input_ids=ids, attention_mask=mask).last_hidden_state.float().cpu()
                b_out += [bh[k, :n].clone() for k, n in enumerate(rows)]
            if teacher is not None:
                with hw.precision.autocast():
                    th = teacher(input_ids=to_teacher[ids], attention_mask=mask).last_hidden_state.float()
                t_emb.append(masked_mean_torch(th, mask).cpu())
                th = th.cpu()
                t_out += [th[k, :n].clone() for k, n in enumerate(rows)]
            advance(len(rows))
    return b_out, t_out, (torch.cat(t_emb) if t_emb else None)


def cache_groups(groups: dict[str, list[Sentence]], teach: set[str], *, body, run: Path, student_dir: Path,
                 student_config, teacher_name: str, max_length: int, hardware=None) -> dict[str, CachedText]:
    """Body states of every group's sentences; teacher targets and anchors for the groups in `teach`
    (computed on `hardware`'s device, kept on the CPU)."""
    from edgelm.distillation.hardware import Hardware
    from tokenizers import Tokenizer

    from edgelm.checkpoint import EmbeddingRecipe, load_model
    from edgelm.distillation.general import TokenizedCorpus
    from edgelm.teacher.registry import resolve_model

    hw = hardware or Hardware.resolve("cpu")
    teacher = load_model(resolve_model(teacher_name)).to(hw.device)
    body.to(hw.device)
    kept = torch.as_tensor(json.loads((run / "vocab.json").read_text())["kept"], dtype=torch.long, device=hw.device)
    prefix = EmbeddingRecipe.from_config(student_config, str(student_dir)).prefix
    tokenizer, pad = Tokenizer.from_file(str(student_dir / "tokenizer.json")), student_config.pad_token_id

    def ids_of(texts: list[str]) -> TokenizedCorpus:
        return TokenizedCorpus.build(tokenizer, texts, prefix, max_length)

    cached, embedding = {}, {}
    for name, sentences in groups.items():
        texts = [s.text for s in sentences]
        trains = name in teach
        b, t, emb = _cache(ids_of(texts), body, teacher if trains else None, kept, pad,
                           name if trains else f"{name} (router only)", hw=hw)
        cached[name] = (b, t)
        if emb is not None:
            embedding.update(zip(texts, emb))
    missing = list(dict.fromkeys(s.anchor for name in teach for s in groups[name]
                                 if s.anchor is not None and s.anchor not in embedding))
    if missing:  # translations that are not training text themselves
        _, _, emb = _cache(ids_of(missing), None, teacher, kept, pad, "anchors", hw=hw)
        embedding.update(zip(missing, emb))
    body.to("cpu")
    hidden = body.config.hidden_size
    out = {}
    for name, sentences in groups.items():
        has = torch.tensor([name in teach and s.anchor is not None for s in sentences], dtype=torch.bool)
        anchor = torch.stack([embedding[s.anchor] if h else torch.zeros(hidden) for s, h in zip(sentences, has)])
        out[name] = CachedText(*cached[name], anchor, has)
    return out
