"""Phase 1: general bilingual distillation on unlabeled source and target text.

Setup, batching, loss and learning-rate schedule, then one loop that logs, checkpoints and stops.
The teacher sees the student's (trimmed) token ids mapped back to its own vocabulary, so both
read exactly the same text.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgelm.distillation.batches import BalancedBatches
from edgelm.distillation.state import load_checkpoint, save_checkpoint
from edgelm.distillation.config import DistillConfig
from edgelm.distillation.losses import attention_mse, embedding_cosine, hidden_mse
from edgelm.distillation.student import layer_map
from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import masked_mean_torch
from edgelm.progress import progress_bar

LOG_FIELDS = ("step", "language", "loss", "hidden", "attn", "embed", "parallel", "contrastive", "lr", "elapsed_s")


def lr_at(step: int, cfg: DistillConfig, total: int | None = None) -> float:
    """Linear warm-up over `warmup` of the steps, then linear decay to 0 (any cfg with lr, warmup, steps)."""
    total = total or cfg.steps
    warm = int(cfg.warmup * total)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * max(0.0, (total - step) / max(1, total - warm))


@dataclass
class TokenizedCorpus:
    """Student token ids per sentence (with special tokens), truncated to max_length."""

    ids: list[list[int]]

    @classmethod
    def build(cls, tokenizer, texts: list[str], prefix: str, max_length: int) -> TokenizedCorpus:
        enc = tokenizer.encode_batch([prefix + t for t in texts])
        out = []
        for e in enc:
            ids = e.ids
            if len(ids) > max_length:
                ids = ids[: max_length - 1] + ids[-1:]  # keep </s>
            out.append(ids)
        return cls(out)

    def batch(self, indices: np.ndarray, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.ids[i] for i in indices]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.tensor(r)
            mask[k, : len(r)] = 1
        return ids, mask


def distillation_terms(cfg: DistillConfig, s_out, t_out, mask, lmap) -> dict[str, torch.Tensor]:
    """The weighted phase-1 loss terms between student and teacher outputs."""
    terms = {}
    if cfg.alpha_hidden:
        terms["hidden"] = cfg.alpha_hidden * hidden_mse(s_out.hidden_states, t_out.hidden_states, lmap, mask)
    if cfg.alpha_attn:
        terms["attn"] = cfg.alpha_attn * attention_mse(s_out.attentions, t_out.attentions, lmap, mask)
    if cfg.alpha_embed:
        terms["embed"] = cfg.alpha_embed * embedding_cosine(
            s_out.hidden_states[-1], t_out.hidden_states[-1], mask)
    return terms


@torch.no_grad()
def teacher_sentence_embeddings(teacher, corpus: TokenizedCorpus, to_teacher: torch.Tensor, pad_id: int,
                                batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled teacher embeddings of every sentence of `corpus` (the parallel loss's targets)."""
    out = []
    for start in range(0, len(corpus.ids), batch_size):
        ids, mask = corpus.batch(np.arange(start, min(start + batch_size, len(corpus.ids))), pad_id)
        out.append(masked_mean_torch(teacher(input_ids=to_teacher[ids], attention_mask=mask).last_hidden_state, mask))
    return torch.cat(out)


def train_general(cfg: DistillConfig, teacher, student, kept_ids: np.ndarray, corpora: dict[str, TokenizedCorpus],
                  out_dir: Path, *, pad_id: int, resume: bool, pairs: dict[str, list[int]] | None = None,
                  source: str | None = None) -> dict:
    """Run phase 1 in `out_dir`, resuming from its checkpoint when asked; return a summary.

    `pairs[lang][i]` is the index in the `source` corpus of sentence i's translation (-1: none).
    """
    torch.manual_seed(cfg.seed)
    t_layers, s_layers = teacher.config.num_hidden_layers, student.config.num_hidden_layers
    lmap = layer_map(t_layers, s_layers)
    to_teacher = torch.as_tensor(kept_ids, dtype=torch.long)
    sizes = {lang: len(c.ids) for lang, c in corpora.items()}
    too_small = [lang for lang, n in sizes.items() if n < cfg.batch_size]
    if too_small:
        raise EdgelmError(f"corpus for {too_small[0]} has {sizes[too_small[0]]} sentences, fewer than one batch "
                          f"of {cfg.batch_size}")
    batches = BalancedBatches(sizes, cfg.batch_size, cfg.seed)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out_dir / "checkpoints" / "general"
    log_path = out_dir / "general_log.csv"
    step, elapsed_before = 0, 0.0
    if resume and (ckpt / "state.json").is_file():
        state = load_checkpoint(ckpt, student, opt)
        step, elapsed_before = state["step"], state["elapsed_s"]
    _truncate_log(log_path, step)

    teacher.eval()
    # Each sentence's anchor in the teacher's source-language space: its own embedding for source
    # sentences, its translation's for target sentences that have one (index -1: none).
    parallel, src_emb = {}, None
    if source in corpora and (cfg.alpha_parallel or cfg.alpha_contrastive) and pairs:
        src_emb = F.normalize(teacher_sentence_embeddings(teacher, corpora[source], to_teacher, pad_id), dim=-1)
        parallel[source] = torch.arange(len(corpora[source].ids))
        for lang, idx in pairs.items():
            parallel[lang] = torch.as_tensor(idx, dtype=torch.long)
    student.train()
    started = time.perf_counter()
    last = {}
    with open(log_path, "a", newline="") as log_fh, progress_bar(
            "phase 1 (general)", cfg.steps, "step") as advance:
        writer = csv.DictWriter(log_fh, LOG_FIELDS)
        if log_fh.tell() == 0:
            writer.writeheader()
        advance(step)
        while step < cfg.steps:
            lang, idx = batches(step)
            ids, mask = corpora[lang].batch(idx, pad_id)
            with torch.no_grad():
                t_out = teacher(input_ids=to_teacher[ids], attention_mask=mask, output_hidden_states=True,
                                output_attentions=bool(cfg.alpha_attn))
            s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                            output_attentions=bool(cfg.alpha_attn))
            terms = distillation_terms(cfg, s_out, t_out, mask, lmap)
            if lang in parallel:
                anchor = parallel[lang][torch.as_tensor(idx, dtype=torch.long)]
                keep = anchor >= 0
                if keep.any():
                    emb = F.normalize(masked_mean_torch(s_out.hidden_states[-1], mask)[keep], dim=-1)
                    if cfg.alpha_parallel and lang != source:
                        terms["parallel"] = cfg.alpha_parallel * (1 - (emb * src_emb[anchor[keep]]).sum(-1)).mean()
                    if cfg.alpha_contrastive:
                        logits = emb @ src_emb.T / cfg.contrastive_temperature
                        terms["contrastive"] = cfg.alpha_contrastive * F.cross_entropy(logits, anchor[keep])
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise EdgelmError(f"loss became {loss.item()} at step {step}; lower --lr")
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            last = {k: float(v.detach()) for k, v in terms.items()}
            if step % cfg.log_every == 0 or step == cfg.steps:
                writer.writerow({"step": step, "language": lang, "loss": f"{loss.item():.6f}",
                                 "hidden": f"{last.get('hidden', 0):.6f}", "attn": f"{last.get('attn', 0):.8f}",
                                 "embed": f"{last.get('embed', 0):.6f}", "parallel": f"{last.get('parallel', 0):.6f}",
                                 "contrastive": f"{last.get('contrastive', 0):.6f}",
                                 "lr": f"{lr:.3e}",
                                 "elapsed_s": f"{elapsed_before + time.perf_counter() - started:.1f}"})
                log_fh.flush()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt, student, opt, {"step": step,
                                                     "elapsed_s": elapsed_before + time.perf_counter() - started})
            advance(1, info=f"loss {loss.item():.4f}")
    student.eval()
    return {"steps": step, "final_terms": last, "layer_map": lmap,
            "train_seconds": round(elapsed_before + time.perf_counter() - started, 1)}


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint we resume from, so the log reads as one run."""
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_FIELDS)
        writer.writeheader()
        for row in rows:
            if int(row["step"]) <= step:
                writer.writerow(row)
