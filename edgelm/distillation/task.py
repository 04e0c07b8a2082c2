"""Phase 2: task distillation from a task-tuned teacher, learnt as a Lottery-Ticket sparse fine-tuning.

Any task `distillation.task_data` reads — SIB-200 (the default), or the user's own sentences or
tagged words — through one loop:
1. The task teacher: the teacher fine-tuned on the task's training rows (dev for model selection),
   unless `--task-teacher` gives one (its head and labels must be the task's). Saved in
   `task_teacher/` with the task it was trained for, and reused for that task only.
2. The student (phase-1 body + a new head: a sentence classifier or a word tagger) learns from it:
   logit KD at temperature T (per sentence, or per word at its first sub-word) plus the hidden /
   attention terms, gold labels optional. LT-SFT: train everything, keep the K body parameters that
   moved most, reset, retrain only those (the head stays dense). With `--task-target-share` a share of
   the batches is unlabelled target-language text, where the teacher's predictions are the targets:
   a zero-shot student then learns the task in the language it will run in, not only in the source.
3. Output: `task/` a merged dense task model (for export and eval), `task/task_diff.safetensors`
   the sparse body difference against `general/` (edgelm.kernels.sparse_diff), `task/head.safetensors`.
Checkpoints after every epoch, the task teacher's and the student's: a kill loses at most one epoch.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgelm.checkpoint import head_labels, task_head
from edgelm.distillation.config import DistillConfig
from edgelm.distillation.hardware import Hardware
from edgelm.distillation.losses import attention_mse, hidden_mse, logit_kd
from edgelm.distillation.lt_sft import mask_gradients, select_mask
from edgelm.distillation.state import (cpu_weights, load_checkpoint, restore_rng, rng_state, save_checkpoint,
                                       save_tensors)
from edgelm.distillation.student import layer_map
from edgelm.distillation.targets import TeacherTargets
from edgelm.distillation.task_data import PhaseTwoData, phase_two_data, unlabelled_rows
from edgelm.errors import EdgelmError
from edgelm.kernels.sparse_diff import SparseDiff
from edgelm.progress import notice, progress_bar
from edgelm.task_model import save_task_model
from edgelm.tensorfile import read_tensors

BODY_PREFIX = "bert."
HEAD = {"sentence": "sequence", "tagging": "token"}


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    perm = np.random.default_rng([seed, 7, epoch]).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def epoch_plan(n_rows: int, batch_size: int, seed: int, epoch: int, n_extra_rows: int = 0,
               extra_batches: int = 0) -> list[tuple[str, np.ndarray]]:
    """One epoch's batches, a pure function of seed and epoch (so a resumed epoch is the same): every
    labelled row once ("task"), and `extra_batches` batches of the unlabelled pool ("target", cycled
    in fresh orders) spread through the epoch in a seeded order."""
    plan = [("task", idx) for idx in _batches(n_rows, batch_size, seed, epoch)]
    if not extra_batches:
        return plan
    rng = np.random.default_rng([seed, 19, epoch])
    need = extra_batches * batch_size
    order = np.concatenate([rng.permutation(n_extra_rows) for _ in range(-(-need // n_extra_rows))])[:need]
    merged = plan + [("target", order[i : i + batch_size]) for i in range(0, need, batch_size)]
    return [merged[i] for i in rng.permutation(len(merged))]


def _load_head(path: Path, data: PhaseTwoData, seed: int):
    """A classifier (sentences) or tagger (words) with the task's labels, from a checkpoint folder."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the new head's "newly initialized" notice is expected
    torch.manual_seed(seed)
    cls = AutoModelForSequenceClassification if data.kind == "sentence" else AutoModelForTokenClassification
    return cls.from_pretrained(path, num_labels=len(data.labels), id2label=dict(enumerate(data.labels)),
                               label2id={l: i for i, l in enumerate(data.labels)}, use_safetensors=True,
                               attn_implementation="eager")


def check_task_teacher(folder: Path, data: PhaseTwoData) -> None:
    """Refuse a `--task-teacher` whose head or labels are not the task's (before anything is trained)."""
    if not (folder / "model.safetensors").is_file():
        raise EdgelmError(f"task teacher {folder} has no model.safetensors")
    head, labels = task_head(folder), head_labels(folder)
    if head != HEAD[data.kind]:
        raise EdgelmError(f"task teacher {folder} is {'a ' + head + ' classifier' if head else 'not a task model'}; "
                          f"this task needs a {HEAD[data.kind]} classifier")
    if labels != data.labels:
        raise EdgelmError(f"task teacher {folder} predicts {labels}, not this task's labels {data.labels}")


def task_teacher(cfg: DistillConfig, teacher_path: Path, out: Path, data: PhaseTwoData,
                 resume: bool = False, hardware: Hardware | None = None) -> tuple[object, dict]:
    """The task-tuned teacher: given (`--task-teacher`, checked to fit the task), already trained in
    `out/task_teacher` for this very task, or fine-tuned now (on `hardware`'s device and precision)."""
    hw = hardware or Hardware.resolve("cpu")
    from edgelm.checkpoint import EmbeddingRecipe, load_tokenizer

    given = Path(cfg.task_teacher) if cfg.task_teacher else None
    folder = given or out / "task_teacher"
    if given is not None:
        check_task_teacher(given, data)
        return _load_head(given, data, cfg.seed).to(hw.device).eval(), {"given": str(given)}
    note = folder / "task_teacher.json"
    if (folder / "model.safetensors").is_file() and note.is_file():
        info = json.loads(note.read_text())
        recorded = info.get("task")
        if recorded == data.identity or (recorded is None and data.identity.get("name") == "sib200"):
            return _load_head(folder, data, cfg.seed).to(hw.device).eval(), info  # (no record: SIB-200's)
        if resume:
            raise EdgelmError(f"{out} holds a run for another task ({(recorded or {}).get('name', 'sib200')}); resume it with "
                              "that --task, or start phase 2 again without --resume")
    tokenizer = load_tokenizer(teacher_path)
    model = _load_head(teacher_path, data, cfg.seed).to(hw.device)
    prefix = EmbeddingRecipe.from_config(model.config, cfg.teacher).prefix
    model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)  # 96 M rows a task never needs to move
    train, dev = data.train, data.dev
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.teacher_lr)
    scaler = hw.precision.scaler()
    # A checkpoint after every epoch, as in phase 2: fine-tuning a 100 M+ teacher takes tens of minutes on
    # a CPU, and a kill then costs at most one epoch. Batches are a pure function of seed and epoch.
    ckpt, best_file = out / "checkpoints" / "task_teacher", out / "checkpoints" / "task_teacher_best.safetensors"
    score_key = "dev_accuracy" if data.kind == "sentence" else "dev_score"
    state = {"epoch": 0, "best": -1.0, "history": [], "elapsed_s": 0.0, "identity": cfg.task_identity(),
             "task": data.identity}
    if resume and (ckpt / "state.json").is_file():
        state = _resume(ckpt, cfg, data, model, opt, "a task teacher in training", "train it again")
        restore_rng(state.pop("rng"), hw.device)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    steps_per_epoch = -(-len(train) // cfg.task_batch_size)
    started = time.perf_counter()
    with progress_bar("task teacher", cfg.teacher_epochs * steps_per_epoch, "step") as advance:
        advance(state["epoch"] * steps_per_epoch)
        for epoch in range(state["epoch"], cfg.teacher_epochs):
            model.train()
            for idx in _batches(len(train), cfg.task_batch_size, cfg.seed, epoch):
                b, y = _to(hw.device, *data.batch(tokenizer, [train[i] for i in idx], prefix, cfg.max_length))
                with hw.precision.autocast():
                    logits = model(**b).logits
                loss = F.cross_entropy(*data.pick(logits.float(), y))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                advance(1, info=f"loss {loss.item():.3f}")
            acc = data.score(model, tokenizer, dev, prefix, cfg.max_length)
            state["history"].append({"epoch": epoch + 1, score_key: acc})
            if acc > state["best"]:
                state["best"] = acc
                save_tensors(cpu_weights(model), best_file)
            state["epoch"] = epoch + 1
            state["elapsed_s"] += time.perf_counter() - started
            started = time.perf_counter()
            save_checkpoint(ckpt, model, opt, {**state, "rng": rng_state(hw.device)})  # the teacher has dropout
    best, history = state["best"], state["history"]
    model.load_state_dict(read_tensors(best_file, "the task teacher's best epoch")[1])
    top, chance = data.baseline()
    info = {score_key: best, "dev_metric": data.metric,
            "history": history, "train_seconds": round(state["elapsed_s"], 1), "task": data.identity,
            "majority_baseline": {"answer": top, "dev_score": round(chance, 4)}, "learnt_nothing": best <= chance}
    if info["learnt_nothing"]:  # its targets would teach the student nothing either: say so, loudly
        notice(f"warning: the task teacher learnt nothing: its best dev {data.metric} {best:.3f} is what always "
               f"answering {top!r} scores ({chance:.3f}); try another --teacher-lr (it was {cfg.teacher_lr:g}) or "
               "more --teacher-epochs")
    save_task_model(model.to("cpu"), tokenizer, folder, notes={"task_teacher.json": info},
                    provenance={"teacher": cfg.teacher, "task": data.identity.get("name"), "source": cfg.source,
                                "languages": data.languages, "scheme": data.scheme})
    shutil.rmtree(ckpt, ignore_errors=True)  # the saved teacher supersedes its ~1 GB of training state
    best_file.unlink(missing_ok=True)
    return model.to(hw.device).eval(), info


def _resume(ckpt: Path, cfg: DistillConfig, data: PhaseTwoData, model: torch.nn.Module,
            opt: torch.optim.Optimizer, what: str, restart: str) -> dict:
    """Restore `model` and `opt` from the epoch checkpoint `ckpt` (the task teacher's or phase 2's) and
    return its state, after checking it was made with these task settings for this task."""
    saved = json.loads((ckpt / "state.json").read_text())["state"]
    if saved.get("identity") != cfg.task_identity() or saved.get("task", data.identity) != data.identity:
        raise EdgelmError(f"{ckpt.parent.parent} holds {what} with other task settings or another task; resume with "
                          f"the same ones or delete {ckpt} to {restart}")
    return load_checkpoint(ckpt, model, opt)


def _to(device, inputs: dict, targets: torch.Tensor) -> tuple[dict, torch.Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}, targets.to(device)


def train_task(cfg: DistillConfig, teacher_path: Path, out: Path, *, data_root: Path | None, resume: bool,
               data: PhaseTwoData | None = None, hardware: Hardware | None = None,
               target_text: Mapping[str, Iterable[str]] | None = None) -> dict:
    """Phase 2 into `out/task` (one process, on `hardware`'s device and precision); returns its summary.

    `target_text`: unlabelled text of the target languages; with `cfg.task_target_share` > 0 that
    fraction of the batches comes from it, the task teacher's predictions its only targets."""
    from edgelm.checkpoint import EmbeddingRecipe, load_tokenizer

    hw = hardware or Hardware.resolve("cpu")
    data = data or phase_two_data(cfg, data_root)
    teacher, teacher_info = task_teacher(cfg, teacher_path, out, data, resume, hw)
    general = out / "general"
    tokenizer = load_tokenizer(general)
    kept = torch.as_tensor(json.loads((out / "vocab.json").read_text())["kept"], dtype=torch.long, device=hw.device)
    student = _load_head(general, data, cfg.seed).to(hw.device)
    prefix = EmbeddingRecipe.from_config(student.config, cfg.teacher).prefix
    lmap = layer_map(teacher.config.num_hidden_layers, student.config.num_hidden_layers)
    train, dev = data.train, data.dev
    mixed = bool(target_text) and cfg.task_target_share > 0
    unlabelled = unlabelled_rows(data, target_text, len(train), cfg.seed) if mixed else []
    per_epoch = -(-len(train) // cfg.task_batch_size)
    extra = round(per_epoch * cfg.task_target_share / (1 - cfg.task_target_share)) if unlabelled else 0
    steps_per_epoch = per_epoch + extra
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    params = dict(student.named_parameters())
    body = [n for n in params if n.startswith(BODY_PREFIX) and not n.startswith(BODY_PREFIX + "pooler")]
    n_body = sum(params[n].numel() for n in body)
    k = cfg.nnz or int(cfg.density * n_body)
    ckpt, best_file, mask_file = out / "checkpoints" / "task", out / "checkpoints" / "task_best.safetensors", \
        out / "checkpoints" / "task_mask.safetensors"
    log_path = out / "task_log.csv"
    ckpt.parent.mkdir(parents=True, exist_ok=True)  # a run whose phase-1 checkpoints were cleaned away has none
    score_key = "dev_accuracy" if data.kind == "sentence" else "dev_score"

    stages = [("full", cfg.full_epochs), ("sparse", cfg.sparse_epochs)]
    state = {"stage": 0, "epoch": 0, "best": -1.0, "history": [], "elapsed_s": 0.0, "identity": cfg.task_identity(),
             "task": data.identity}
    masks = None
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.task_lr, weight_decay=0.0)
    scaler = hw.precision.scaler()
    if resume and (ckpt / "state.json").is_file():
        state = _resume(ckpt, cfg, data, student, opt, "a phase-2 run", "start phase 2 again")
        if state["stage"] >= 1:
            masks = {n: m.bool().to(hw.device) for n, m in read_tensors(mask_file, "the LT-SFT mask")[1].items()}
    # Every epoch reads every training row: with the cache the teacher runs once per row, not once per epoch.
    epochs_left = sum(e for _, e in stages[state["stage"]:]) - state["epoch"]
    cache = cfg.teacher_cache and epochs_left > 1  # (one epoch left reads each row once: nothing to keep)
    targets = TeacherTargets(teacher, kept, lmap, attentions=bool(cfg.alpha_task_attn), autocast=hw.precision.autocast,
                             cache=cache, logits=True)
    if cache:
        lengths = [int(n) for rows in (train, unlabelled) for i in range(0, len(rows), 256) for n in
                   data.batch(tokenizer, rows[i : i + 256], prefix, cfg.max_length)[0]["attention_mask"].sum(1)]
        targets.check_fits(lengths, notice)
    started = time.perf_counter()
    total = sum(e for _, e in stages) * steps_per_epoch
    done_steps = (sum(e for _, e in stages[: state["stage"]]) + state["epoch"]) * steps_per_epoch
    with progress_bar("phase 2 (task, LT-SFT)", total, "step") as advance, open(log_path, "a", newline="") as log_fh:
        writer = csv.writer(log_fh)
        advance(done_steps)
        while state["stage"] < len(stages):
            stage, epochs = stages[state["stage"]]
            while state["epoch"] < epochs:
                student.train()
                for origin, idx in epoch_plan(len(train), cfg.task_batch_size, cfg.seed,
                                              1000 * state["stage"] + state["epoch"], len(unlabelled), extra):
                    rows = train if origin == "task" else unlabelled
                    b, y = _to(hw.device, *data.batch(tokenizer, [rows[i] for i in idx], prefix, cfg.max_length))
                    t = targets(origin, idx, b["input_ids"], b["attention_mask"])
                    with hw.precision.autocast():
                        s_out = student(**b, output_hidden_states=True, output_attentions=bool(cfg.alpha_task_attn))
                    s_logits, gold = data.pick(s_out.logits.float(), y)
                    loss = cfg.alpha_kd * logit_kd(s_logits, data.pick(t.logits.float(), y)[0], cfg.temperature)
                    if cfg.alpha_task_hidden:
                        loss = loss + cfg.alpha_task_hidden * hidden_mse(s_out.hidden_states, t.hidden, lmap,
                                                                         b["attention_mask"])
                    if cfg.alpha_task_attn:
                        loss = loss + cfg.alpha_task_attn * attention_mse(s_out.attentions, t.attentions, lmap,
                                                                          b["attention_mask"])
                    if cfg.alpha_gold and origin == "task":  # unlabelled rows have no gold label
                        loss = loss + cfg.alpha_gold * F.cross_entropy(s_logits, gold)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if masks is not None:
                        mask_gradients(params, masks)
                    scaler.step(opt)
                    scaler.update()
                    advance(1, info=f"{stage} loss {loss.item():.3f}")
                acc = data.score(student, tokenizer, dev, prefix, cfg.max_length)
                state["epoch"] += 1
                state["history"].append({"stage": stage, "epoch": state["epoch"], score_key: acc})
                writer.writerow([stage, state["epoch"], f"{loss.item():.5f}", f"{acc:.4f}"])
                log_fh.flush()
                if acc > state["best"]:
                    state["best"] = acc
                    save_tensors(cpu_weights(student), best_file)
                state["elapsed_s"] += time.perf_counter() - started
                started = time.perf_counter()
                save_checkpoint(ckpt, student, opt, state)
            # End of a stage: continue from its best epoch (BiStil reloads the best checkpoint).
            student.load_state_dict(read_tensors(best_file, "the best phase-2 epoch")[1])
            if stage == "full":
                masks = select_mask({n: initial[n] for n in body}, {n: params[n] for n in body}, k)
                save_tensors({n: m.to(torch.uint8).cpu().contiguous() for n, m in masks.items()}, mask_file)
                student.load_state_dict(initial)  # reset everything, the head back to its initial values
                opt = torch.optim.AdamW(student.parameters(), lr=cfg.task_lr, weight_decay=0.0)
            state["stage"] += 1
            state["epoch"] = 0
            state["best"] = -1.0
            save_checkpoint(ckpt, student, opt, state)

    student.to("cpu")
    initial = {n: v.cpu() for n, v in initial.items()}
    masks = {n: m.cpu() for n, m in masks.items()}
    tuned = student.state_dict()
    diff = SparseDiff.between({n: initial[n] for n in body}, {n: tuned[n] for n in body}, masks)
    diff.meta = {"task": cfg.task, "labels": data.labels, "density": cfg.density, "k": k, "source": cfg.source,
                 "body": str(general)}
    outside = sum(int(((tuned[n] != initial[n]) & ~masks[n]).sum()) for n in body)
    if outside:
        raise RuntimeError(f"LT-SFT changed {outside} parameters outside its mask")

    save_task_model(student, tokenizer, out / "task", diff=diff,
                    head={n: tuned[n] for n in tuned if not n.startswith(BODY_PREFIX) or "pooler" in n},
                    provenance={"teacher": cfg.teacher, "task": data.identity.get("name"), "scheme": data.scheme,
                                "source": cfg.source, "student": str(general), "languages": cfg.languages,
                                "trained_on": data.languages, "setting": data.setting, "density": cfg.density})
    dev_acc = data.score(student, tokenizer, dev, prefix, cfg.max_length)
    summary = {"task_teacher": teacher_info, "k": k, "body_parameters": n_body, "nnz": diff.nnz,
            score_key: dev_acc, "dev_metric": data.metric, "history": state["history"],
            "train_seconds": round(state["elapsed_s"], 1),
            "data": {"task": data.identity.get("name"), "kind": data.kind, "scheme": data.scheme,
                     "labels": data.labels, "setting": data.setting, "trained_on": data.languages,
                     "train_rows": len(train), "dev_rows": len(dev), "dev": data.dev_note or "dev split"}}
    if unlabelled:
        summary["target_text"] = {"languages": list(target_text), "rows": len(unlabelled), "share": cfg.task_target_share,
                                  "batches_per_epoch": extra}
    if cache:  # this process's counts (a resumed run starts its cache again)
        summary["teacher_cache"] = targets.counts()
    return summary
