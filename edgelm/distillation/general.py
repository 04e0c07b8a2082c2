"""Phase 1: general bilingual distillation on unlabeled source and target text.

Setup, batching, loss and learning-rate schedule, then one loop that logs, checkpoints and stops.
The teacher sees the student's (trimmed) token ids mapped back to its own vocabulary, so both
read exactly the same text.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgelm.data.shards import TokenShard, encode_chunks, find_shard, shard_key, tokenizer_hash, write_shard
from edgelm.distillation.batches import BalancedBatches
from edgelm.distillation.config import DistillConfig
from edgelm.distillation.hardware import Hardware
from edgelm.distillation.losses import attention_mse, embedding_cosine, hidden_mse
from edgelm.distillation.state import load_checkpoint, save_checkpoint
from edgelm.distillation.student import layer_map
from edgelm.distillation.targets import Targets, TeacherTargets
from edgelm.distillation.text import TrainingText
from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import masked_mean_torch
from edgelm.progress import notice, progress_bar

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
    """Student token ids per sentence (with special tokens), cut to max_length: a token shard,
    in memory or memory-mapped from edgelm's cache."""

    shard: TokenShard

    @classmethod
    def build(cls, tokenizer, texts: Iterable[str], prefix: str, max_length: int) -> TokenizedCorpus:
        """Tokenize `texts` in memory (text small enough to hold twice)."""
        return cls(TokenShard.from_rows(r for rows in encode_chunks(tokenizer, texts, prefix, max_length) for r in rows))

    @classmethod
    def cached(cls, text: TrainingText, tokenizer, prefix: str, max_length: int, build: bool = True,
               poll_seconds: float = 2.0) -> TokenizedCorpus:
        """The memory-mapped shard of `text` for this tokenizer: found in the cache, or tokenized now
        (streamed) and kept there for later runs. A shard whose record does not match is rebuilt.
        `build=False` (ranks other than 0) waits for another process to write it instead."""
        text.scan()
        key = shard_key(text.sha256, tokenizer_hash(tokenizer), prefix, max_length)
        shard = find_shard(key)
        while shard is None and not build:
            time.sleep(poll_seconds)
            shard = find_shard(key)
        if shard is None:
            with progress_bar(f"tokenizing {text.language}", text.report["sentences"], "sent") as advance:
                shard = write_shard(key, tokenizer, text, progress=advance, extra={"language": text.language})
        return cls(shard)

    def __len__(self) -> int:
        return len(self.shard)

    def batch(self, indices: np.ndarray, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.shard.row(int(i)) for i in indices]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, r in enumerate(rows):
            ids[k, : len(r)] = torch.from_numpy(r.astype(np.int64))
            mask[k, : len(r)] = 1
        return ids, mask

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """Token counts (special tokens included) of the sentences `indices`."""
        return self.shard.lengths(indices)


@dataclass(frozen=True)
class BatchCounts:
    """What a whole global batch's losses divide by, so that its micro-batches' losses add up to it."""

    sentences: int
    tokens: int
    pairs: int  # (query, key) pairs of real tokens, per head: the sum of squared lengths
    anchored: int  # sentences with a translation anchor (the parallel term)

    @classmethod
    def of(cls, lengths: np.ndarray, anchored: int = 0) -> BatchCounts:
        lengths = np.asarray(lengths, dtype=np.int64)
        return cls(len(lengths), int(lengths.sum()), int((lengths ** 2).sum()), anchored)


def distillation_terms(cfg: DistillConfig, s_out, t: Targets, mask, lmap, counts: BatchCounts | None = None
                       ) -> dict[str, torch.Tensor]:
    """The weighted phase-1 loss terms between student outputs and the teacher's targets `t`.

    With `counts`, every term is divided by the whole global batch's counts, not this piece's.
    """
    tokens, pairs, sentences = (counts.tokens, counts.pairs, counts.sentences) if counts else (None, None, None)
    terms = {}
    if cfg.alpha_hidden:
        terms["hidden"] = cfg.alpha_hidden * hidden_mse(s_out.hidden_states, t.hidden, lmap, mask, tokens)
    if cfg.alpha_attn:
        terms["attn"] = cfg.alpha_attn * attention_mse(s_out.attentions, t.attentions, lmap, mask, pairs)
    if cfg.alpha_embed:
        terms["embed"] = cfg.alpha_embed * embedding_cosine(
            s_out.hidden_states[-1], t.hidden[t.last], mask, sentences)
    return terms


@torch.no_grad()
def teacher_sentence_embeddings(teacher, corpus: TokenizedCorpus, to_teacher: torch.Tensor, pad_id: int,
                                batch_size: int = 64, rows: np.ndarray | None = None, device=None,
                                autocast=nullcontext) -> torch.Tensor:
    """Mean-pooled teacher embeddings of the sentences `rows` of `corpus` (default: all): the parallel
    loss's targets."""
    rows = np.arange(len(corpus)) if rows is None else np.asarray(rows)
    out = []
    for start in range(0, len(rows), batch_size):
        ids, mask = (x.to(device) for x in corpus.batch(rows[start : start + batch_size], pad_id))
        with autocast():
            hidden = teacher(input_ids=to_teacher[ids], attention_mask=mask).last_hidden_state
        out.append(masked_mean_torch(hidden.float(), mask))
    return torch.cat(out) if out else torch.zeros(0, teacher.config.hidden_size, device=device)


class SourceAnchors:
    """The teacher's L2-normalised embeddings of the source sentences `rows` of `corpus` (row k of `table`
    is sentence rows[k]), each computed the first time a batch needs it."""

    def __init__(self, teacher, corpus: TokenizedCorpus, rows: np.ndarray, to_teacher, pad_id: int, device,
                 autocast):
        self.teacher, self.corpus, self.rows = teacher, corpus, rows
        self.to_teacher, self.pad_id, self.device, self.autocast = to_teacher, pad_id, device, autocast
        self.table = torch.zeros(len(rows), teacher.config.hidden_size, device=device)
        self.done = torch.zeros(len(rows), dtype=torch.bool, device=device)

    def __call__(self, wanted: torch.Tensor) -> None:
        """Make sure the rows `wanted` (indices into `table`) are computed."""
        missing = torch.unique(wanted[~self.done[wanted]])
        if len(missing):
            emb = teacher_sentence_embeddings(self.teacher, self.corpus, self.to_teacher, self.pad_id,
                                              rows=self.rows[missing.cpu().numpy()], device=self.device,
                                              autocast=self.autocast)
            self.table[missing] = F.normalize(emb, dim=-1)
            self.done[missing] = True


def train_general(cfg: DistillConfig, teacher, student, kept_ids: np.ndarray, corpora: dict[str, TokenizedCorpus],
                  out_dir: Path, *, pad_id: int, resume: bool, pairs: dict[str, list[int]] | None = None,
                  source: str | None = None, hardware: Hardware | None = None, teacher_cache: bool = False) -> dict:
    """Run phase 1 in `out_dir`, resuming from its checkpoint when asked; return a summary.

    `pairs[lang][i]` is the index in the `source` corpus of sentence i's translation (-1: none).
    `hardware`: device, precision and the torchrun world (default: one CPU process, fp32). Each global
    batch is a pure function of (seed, step); every rank takes its share of it, so any world size and
    accumulation follow the same trajectory (up to float summation order).
    """
    hw = hardware or Hardware.resolve()
    world, device = hw.world, hw.device
    torch.manual_seed(cfg.seed)
    t_layers, s_layers = teacher.config.num_hidden_layers, student.config.num_hidden_layers
    lmap = layer_map(t_layers, s_layers)
    to_teacher = torch.as_tensor(kept_ids, dtype=torch.long, device=device)
    sizes = {lang: len(c) for lang, c in corpora.items()}
    too_small = [lang for lang, n in sizes.items() if n < cfg.batch_size]
    if too_small:
        raise EdgelmError(f"corpus for {too_small[0]} has {sizes[too_small[0]]} sentences, fewer than one batch "
                          f"of {cfg.batch_size}")
    split_note = hw.check_batch(cfg.batch_size)
    say = notice if world.main else (lambda text: None)
    if split_note:
        say(split_note)
    anchored = {lang: np.flatnonzero(np.asarray(v) >= 0) for lang, v in (pairs or {}).items()
                if lang in sizes and lang != source} if cfg.anchor_share else {}
    if cfg.anchor_share and not any(len(v) for v in anchored.values()):
        say("--anchor-share: no target sentence has a translation anchor; batches take sentences as they come")
    batches = BalancedBatches(sizes, cfg.batch_size, cfg.seed, anchored, cfg.anchor_share,
                              source=source, source_share=cfg.source_share)
    teacher.to(device).eval()
    if device.type != "cpu" and hw.precision.name != "fp32":
        teacher.to(hw.precision.dtype)  # frozen: its weights can live at the reduced precision
    student.to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = hw.precision.scaler()
    ckpt = out_dir / "checkpoints" / "general"
    log_path = out_dir / "general_log.csv"
    step, elapsed_before = 0, 0.0
    if resume and (ckpt / "state.json").is_file():
        state = load_checkpoint(ckpt, student, opt)
        step, elapsed_before = state["step"], state["elapsed_s"]
        if state.get("scaler"):  # fp16: the loss scale the run had reached
            scaler.load_state_dict(state["scaler"])
    if world.main:
        _truncate_log(log_path, step)
    # After the checkpoint: DDP starts every rank from rank 0's weights. Without the hidden-state and
    # embedding terms the top layer's value/output/feed-forward weights get no gradient.
    model = world.wrap(student, device, unused=not (cfg.alpha_hidden or cfg.alpha_embed))

    again = None
    if teacher_cache:
        # the batches are known in advance: keep only the sentences the remaining steps read again
        # (a large corpus read once would fill RAM for nothing)
        reads = batches.draws(range(step, cfg.steps))
        again = {lang: idx[n > 1] for lang, (idx, n) in reads.items()}
    targets = TeacherTargets(teacher, to_teacher, lmap, attentions=bool(cfg.alpha_attn),
                             autocast=hw.precision.autocast, cache=teacher_cache, keep=again)
    if teacher_cache:
        targets.check_fits([n for lang, idx in again.items() for n in corpora[lang].lengths(idx).tolist()],
                           say, copies=world.local_size)
        say(f"teacher cache: {sum(map(len, again.values()))} of the {sum(len(i) for i, _ in reads.values())} "
            "sentences this run reads are read again and kept; the teacher runs for the rest each time")
    # Each sentence's anchor in the teacher's source-language space: its own embedding for source
    # sentences with a translation, its translation's for target sentences (index -1: none). Anchors
    # are embedded by the teacher when a batch first needs them, so a large bitext costs only what
    # training reads; the contrastive term ranks each sentence's anchor among the anchors embedded so
    # far (a memory bank that grows as training reads, the same on every rank).
    parallel, anchors_of = {}, None
    if source in corpora and (cfg.alpha_parallel or cfg.alpha_contrastive) and pairs:
        needed = np.unique(np.concatenate([np.asarray(v, dtype=np.int64) for v in pairs.values()]
                                          + [np.zeros(0, np.int64)]))
        needed = needed[needed >= 0]
        row_of = torch.full((sizes[source],), -1, dtype=torch.long)
        row_of[torch.as_tensor(needed, dtype=torch.long)] = torch.arange(len(needed))
        anchors_of = SourceAnchors(teacher, corpora[source], needed, to_teacher, pad_id, device, hw.precision.autocast)
        parallel[source] = row_of.to(device)
        for lang, idx in pairs.items():
            idx = torch.as_tensor(idx, dtype=torch.long)
            parallel[lang] = torch.where(idx >= 0, row_of[idx.clamp(min=0)], idx).to(device)
        if cfg.alpha_contrastive and step:  # a resumed run: the bank holds what the steps before read
            read = [parallel[lang][torch.as_tensor(idx, device=device)] for lang, idx in map(batches, range(step))
                    if lang in parallel]
            read = torch.cat(read) if read else torch.zeros(0, dtype=torch.long, device=device)
            anchors_of(read[read >= 0])
    student.train()
    started = time.perf_counter()
    last = {}
    names = ("hidden", "attn", "embed", "parallel", "contrastive")
    with open(log_path, "a", newline="") if world.main else nullcontext() as log_fh, progress_bar(
            "phase 1 (general)", cfg.steps, "step", enabled=None if world.main else False) as advance:
        writer = csv.DictWriter(log_fh, LOG_FIELDS) if world.main else None
        if writer is not None and log_fh.tell() == 0:
            writer.writeheader()
        advance(step)
        while step < cfg.steps:
            lang, idx = batches(step)
            anchors = parallel.get(lang)
            counts = BatchCounts.of(corpora[lang].lengths(idx), 0 if anchors is None else
                                    int((anchors[torch.as_tensor(idx, device=device)] >= 0).sum()))
            if anchors is not None:  # the whole global batch's, on every rank: the bank stays the same everywhere
                wanted = anchors[torch.as_tensor(idx, device=device)]
                anchors_of(wanted[wanted >= 0])
            opt.zero_grad(set_to_none=True)
            total = torch.zeros(len(names), dtype=torch.float64)
            parts = hw.my_parts(idx)
            for k, part in enumerate(parts):
                sync = k == len(parts) - 1
                with (model.no_sync() if world.size > 1 and not sync else nullcontext()):
                    ids, mask = (x.to(device) for x in corpora[lang].batch(part, pad_id))
                    t = targets(lang, part, ids, mask)
                    with hw.precision.autocast():
                        s_out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                                      output_attentions=bool(cfg.alpha_attn))
                    terms = distillation_terms(cfg, s_out, t, mask, lmap, counts)
                    if anchors is not None:
                        anchor = anchors[torch.as_tensor(part, device=device)]
                        terms.update(_parallel_terms(cfg, s_out, mask, anchor, anchors_of, counts, lang == source))
                    loss = sum(terms.values())
                    # DDP averages gradients over ranks; the pieces' losses are already fractions of the
                    # global batch's, so scale back up by the world size.
                    scaler.scale(loss * world.size).backward()
                total += torch.tensor([float(terms[n].detach()) if n in terms else 0.0 for n in names],
                                      dtype=torch.float64)
            total = world.all_sum(total.to(device)).cpu()  # NCCL reduces GPU tensors only
            loss_value = float(total.sum())
            if not np.isfinite(loss_value):
                raise EdgelmError(f"loss became {loss_value} at step {step}; lower --lr"
                                  + (" or use --precision bf16/fp32" if hw.precision.name == "fp16" else ""))
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            scaler.step(opt)
            scaler.update()
            step += 1
            last = {n: float(v) for n, v in zip(names, total) if v or n in terms}
            if writer is not None and (step % cfg.log_every == 0 or step == cfg.steps):
                writer.writerow({"step": step, "language": lang, "loss": f"{loss_value:.6f}",
                                 "hidden": f"{last.get('hidden', 0):.6f}", "attn": f"{last.get('attn', 0):.8f}",
                                 "embed": f"{last.get('embed', 0):.6f}", "parallel": f"{last.get('parallel', 0):.6f}",
                                 "contrastive": f"{last.get('contrastive', 0):.6f}",
                                 "lr": f"{lr:.3e}",
                                 "elapsed_s": f"{elapsed_before + time.perf_counter() - started:.1f}"})
                log_fh.flush()
            if world.main and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                save_checkpoint(ckpt, student, opt, {"step": step,
                                                     "elapsed_s": elapsed_before + time.perf_counter() - started,
                                                     "scaler": scaler.state_dict() if scaler.is_enabled() else None})
            advance(1, info=f"loss {loss_value:.4f}")
    student.to("cpu").eval()
    summary = {"steps": step, "final_terms": last, "layer_map": lmap,
               "train_seconds": round(elapsed_before + time.perf_counter() - started, 1),
               "hardware": hw.describe()}
    if teacher_cache:
        summary["teacher_cache"] = targets.counts()
    return summary


def _parallel_terms(cfg: DistillConfig, s_out, mask, anchor: torch.Tensor, bank: SourceAnchors,
                    counts: BatchCounts, is_source: bool) -> dict[str, torch.Tensor]:
    """The parallel (and contrastive) terms of one piece of a global batch, normalised over the batch.

    `anchor[i]`: the row of `bank.table` holding the teacher's embedding of sentence i's source version
    (-1: none). The contrastive term ranks it among the rows embedded so far.
    """
    src_emb = bank.table
    keep = anchor >= 0
    terms = {}
    if not keep.any():
        return terms
    emb = F.normalize(masked_mean_torch(s_out.hidden_states[-1].float(), mask)[keep], dim=-1)
    if cfg.alpha_parallel and not is_source:
        terms["parallel"] = cfg.alpha_parallel * (1 - (emb * src_emb[anchor[keep]]).sum(-1)).sum() / counts.anchored
    if cfg.alpha_contrastive:
        logits = (emb @ src_emb.T / cfg.contrastive_temperature).masked_fill(~bank.done, float("-inf"))
        terms["contrastive"] = cfg.alpha_contrastive * F.cross_entropy(logits, anchor[keep], reduction="sum") / counts.anchored
    return terms


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
