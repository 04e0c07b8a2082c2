"""The teacher's side of distillation: the hidden states and attention maps a student is matched to,
and in phase 2 the task teacher's logits.

Computed per batch by the frozen teacher, or — with the teacher cache — kept from the first time each
sentence was seen and reused on every later epoch, so the teacher runs once per sentence instead of
once per step. Only sentences that training reads again are kept (the batches are known in advance).
The cache holds each sentence's real-token rows only (no padding): states and attentions in float16,
logits in float32 (they are small, and the distillation target itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from edgelm.errors import EdgelmError


@dataclass
class Targets:
    """What the losses read: hidden states by index (0 = embeddings) and attentions by layer, padded."""

    hidden: dict[int, torch.Tensor]  # (batch, width, dim)
    attentions: dict[int, torch.Tensor]  # (batch, heads, width, width)
    last: int  # the index of the last hidden state (the sentence embedding's layer)
    logits: torch.Tensor | None = None  # phase 2: (batch, labels) per sentence or (batch, width, labels) per token


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


class TeacherTargets:
    """`targets(lang, indices, ids, mask)`: the teacher's outputs for a batch, from the cache if on
    (`keep`: the sentences worth storing, those read again; None: every one). `logits`: the teacher has a
    task head whose logits are targets too (phase 2)."""

    def __init__(self, teacher, to_teacher: torch.Tensor, layer_map: list[int], *, attentions: bool,
                 autocast, cache: bool = False, keep: Mapping[str, np.ndarray] | None = None, logits: bool = False):
        self.teacher, self.to_teacher, self.autocast, self.logits = teacher, to_teacher, autocast, logits
        self.last = teacher.config.num_hidden_layers
        self.hidden_idx = sorted({0, self.last, *[j + 1 for j in layer_map]})
        self.attn_idx = sorted(set(layer_map)) if attentions else []
        # (language, index) -> (hidden states, attentions or None, logits or None)
        self.store: dict[tuple[str, int], tuple] | None = {} if cache else None
        # with the cache: only these sentence indices of each language are stored (None: all)
        self.keep = None if keep is None else {lang: set(idx.tolist()) for lang, idx in keep.items()}
        self.computed = self.reused = 0

    def counts(self) -> dict:
        """What the cache did in this process: sentences kept, teacher passes, passes saved."""
        return {"sentences_cached": len(self.store or {}), "teacher_passes": self.computed, "reused": self.reused}

    def bytes_per_sentence(self, length: int) -> int:
        """Bytes the cache keeps for a sentence of `length` tokens (float16 states, float32 logits)."""
        cfg = self.teacher.config
        labels = 4 * getattr(cfg, "num_labels", 0) * length if self.logits else 0  # (per token: the upper bound)
        return 2 * length * (len(self.hidden_idx) * cfg.hidden_size
                             + len(self.attn_idx) * cfg.num_attention_heads * length) + labels

    def check_fits(self, lengths: list[int], note, copies: int = 1) -> int:
        """The cache's size for sentences of `lengths` (times `copies`: ranks on this machine each keep
        one, since every rank sees every sentence over the epochs); refuse it when it would not fit."""
        need = sum(self.bytes_per_sentence(n) for n in lengths) * copies
        have = available_memory()
        note(f"teacher cache: {len(lengths)} sentences, {need / 2**30:.2f} GiB of RAM when full (float16"
             + (f", one per rank: {copies} here)" if copies > 1 else ")")
             + (f"; {have / 2**30:.1f} GiB available" if have else ""))
        if have is not None and need > 0.8 * have:
            raise EdgelmError(f"the teacher cache needs {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB is available; "
                              "run without --teacher-cache (the teacher then runs every step)")
        return need

    @torch.no_grad()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor):
        with self.autocast():
            out = self.teacher(input_ids=self.to_teacher[ids], attention_mask=mask, output_hidden_states=True,
                               output_attentions=bool(self.attn_idx))
        return out

    def __call__(self, lang: str, indices, ids: torch.Tensor, mask: torch.Tensor) -> Targets:
        if self.store is None:
            out = self._forward(ids, mask)
            self.computed += len(ids)
            return Targets({i: out.hidden_states[i] for i in self.hidden_idx},
                           {j: out.attentions[j] for j in self.attn_idx}, self.last,
                           out.logits if self.logits else None)
        keys = [(lang, int(i)) for i in indices]
        missing = [k for k, key in enumerate(keys) if key not in self.store]
        once = {}
        if missing:
            rows = torch.as_tensor(missing)
            out = self._forward(ids[rows], mask[rows])
            lengths = mask[rows].sum(1).tolist()
            for r, (k, n) in enumerate(zip(missing, lengths)):
                hidden = torch.stack([out.hidden_states[i][r, :n] for i in self.hidden_idx]).to("cpu", torch.float16)
                att = (torch.stack([out.attentions[j][r, :, :n, :n] for j in self.attn_idx]).to("cpu", torch.float16)
                       if self.attn_idx else None)
                logit = None
                if self.logits:
                    logit = out.logits[r] if out.logits.dim() == 2 else out.logits[r, :n]
                    logit = logit.to("cpu", torch.float32)
                kept = self.keep is None or keys[k][1] in self.keep.get(lang, ())
                (self.store if kept else once)[keys[k]] = (hidden, att, logit)
        self.computed += len(missing)
        self.reused += len(keys) - len(missing)
        return self._assemble(keys, ids.shape[1], ids.device, once)

    def _assemble(self, keys, width: int, device, once: dict) -> Targets:
        cfg = self.teacher.config
        hidden = torch.zeros(len(self.hidden_idx), len(keys), width, cfg.hidden_size)
        att = torch.zeros(len(self.attn_idx), len(keys), cfg.num_attention_heads, width, width)
        rows = [once[key] if key in once else self.store[key] for key in keys]
        logits = None
        if self.logits:  # padded positions stay 0: no loss reads them
            first = rows[0][2]
            logits = torch.zeros(len(keys), *((width,) if first.dim() == 2 else ()), first.shape[-1])
        for b, (h, a, logit) in enumerate(rows):
            n = h.shape[1]
            hidden[:, b, :n] = h
            if a is not None:
                att[:, b, :, :n, :n] = a
            if logits is not None:
                logits[b, : len(logit)] = logit  # a token row's n real tokens, or a sentence's labels
        hidden, att = hidden.to(device), att.to(device)
        return Targets({i: hidden[k] for k, i in enumerate(self.hidden_idx)},
                       {j: att[k] for k, j in enumerate(self.attn_idx)}, self.last,
                       None if logits is None else logits.to(device))
