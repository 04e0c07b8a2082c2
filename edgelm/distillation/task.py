"""Phase 2: task distillation from a task-tuned teacher, learnt as a Lottery-Ticket sparse fine-tuning.

1. The task teacher: the teacher fine-tuned on the source language's SIB-200 train split (dev for
   model selection), unless one is given. Saved in `task_teacher/` and reused on resume.
2. The student (phase-1 body + a new classification head) learns from it: logit KD at temperature T
   plus the hidden / attention terms, gold labels optional. LT-SFT: train everything, keep the K body
   parameters that moved most, reset, retrain only those (the head stays dense).
3. Output: `task/` a merged dense sequence classifier (for export and eval), `task/task_diff.safetensors`
   the sparse body difference against `general/` (edgelm.kernels.sparse_diff), `task/head.safetensors`.
Checkpoints after every epoch: a kill loses at most one epoch.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from edgelm.data.sib200 import load_sib200, sib200_labels
from edgelm.distillation.state import load_checkpoint, save_checkpoint
from edgelm.distillation.config import DistillConfig
from edgelm.distillation.losses import attention_mse, hidden_mse, logit_kd
from edgelm.distillation.lt_sft import mask_gradients, select_mask
from edgelm.distillation.student import layer_map
from edgelm.checkpoint import encode_texts
from edgelm.errors import EdgelmError
from edgelm.kernels.sparse_diff import SparseDiff
from edgelm.task_model import save_task_model
from edgelm.progress import progress_bar

BODY_PREFIX = "bert."


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    perm = np.random.default_rng([seed, 7, epoch]).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]



@torch.no_grad()
def accuracy(model, tokenizer, texts: list[str], labels: np.ndarray, prefix: str, max_length: int = 128) -> float:
    """Accuracy of a sequence classifier on `texts`."""
    model.eval()
    preds = []
    for i in range(0, len(texts), 64):
        b = encode_texts(tokenizer, texts[i : i + 64], prefix, max_length)
        preds.append(model(**b).logits.argmax(-1).numpy())
    return float(np.mean(np.concatenate(preds) == labels))


def _load_classifier(path: Path, labels: list[str], seed: int):
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the new head's "newly initialized" notice is expected
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        use_safetensors=True, attn_implementation="eager")


def task_teacher(cfg: DistillConfig, teacher_path: Path, out: Path, data_root: Path) -> tuple[object, dict]:
    """The task-tuned teacher: given, already trained in `out/task_teacher`, or fine-tuned now."""
    from edgelm.checkpoint import EmbeddingRecipe, load_tokenizer

    labels = sib200_labels(data_root)
    folder = Path(cfg.task_teacher) if cfg.task_teacher else out / "task_teacher"
    if (folder / "model.safetensors").is_file():
        model = _load_classifier(folder, labels, cfg.seed)
        if [model.config.id2label[i] for i in range(model.config.num_labels)] != labels:
            raise EdgelmError(f"task teacher {folder} has labels {list(model.config.id2label.values())}, not SIB-200's")
        return model.eval(), json.loads((folder / "task_teacher.json").read_text()) if (folder / "task_teacher.json").is_file() else {}
    if cfg.task_teacher:
        raise EdgelmError(f"task teacher {folder} has no model.safetensors")
    tokenizer = load_tokenizer(teacher_path)
    model = _load_classifier(teacher_path, labels, cfg.seed)
    prefix = EmbeddingRecipe.from_config(model.config, cfg.teacher).prefix
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # 96 M rows a task never needs to move
    train = load_sib200(data_root, cfg.source, "train")
    dev = load_sib200(data_root, cfg.source, "dev")
    index = {l: i for i, l in enumerate(labels)}
    y = torch.tensor([index[r.label] for r in train])
    y_dev = np.array([index[r.label] for r in dev])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.teacher_lr)
    best, best_state, history = -1.0, None, []
    started = time.perf_counter()
    with progress_bar("task teacher", cfg.teacher_epochs * -(-len(train) // cfg.task_batch_size), "step") as advance:
        for epoch in range(cfg.teacher_epochs):
            model.train()
            for idx in _batches(len(train), cfg.task_batch_size, cfg.seed, epoch):
                b = encode_texts(tokenizer, [train[i].text for i in idx], prefix, cfg.max_length)
                loss = F.cross_entropy(model(**b).logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                advance(1, info=f"loss {loss.item():.3f}")
            acc = accuracy(model, tokenizer, [r.text for r in dev], y_dev, prefix, cfg.max_length)
            history.append({"epoch": epoch + 1, "dev_accuracy": acc})
            if acc > best:
                best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    info = {"dev_accuracy": best, "history": history, "train_seconds": round(time.perf_counter() - started, 1)}
    save_task_model(model, tokenizer, folder, notes={"task_teacher.json": info},
                    provenance={"teacher": cfg.teacher, "task": cfg.task, "source": cfg.source})
    return model.eval(), info


def train_task(cfg: DistillConfig, teacher_path: Path, out: Path, *, data_root: Path, resume: bool) -> dict:
    """Phase 2 into `out/task`; returns its summary."""
    from edgelm.checkpoint import EmbeddingRecipe, load_tokenizer

    if data_root is None:
        raise EdgelmError("phase 2 needs SIB-200 task data: pass --data")
    labels = sib200_labels(data_root)
    index = {l: i for i, l in enumerate(labels)}
    teacher, teacher_info = task_teacher(cfg, teacher_path, out, data_root)
    general = out / "general"
    tokenizer = load_tokenizer(general)
    kept = torch.as_tensor(json.loads((out / "vocab.json").read_text())["kept"], dtype=torch.long)
    student = _load_classifier(general, labels, cfg.seed)
    prefix = EmbeddingRecipe.from_config(student.config, cfg.teacher).prefix
    lmap = layer_map(teacher.config.num_hidden_layers, student.config.num_hidden_layers)
    train = load_sib200(data_root, cfg.source, "train")
    dev = load_sib200(data_root, cfg.source, "dev")
    y = torch.tensor([index[r.label] for r in train])
    y_dev = np.array([index[r.label] for r in dev])
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    params = dict(student.named_parameters())
    body = [n for n in params if n.startswith(BODY_PREFIX) and not n.startswith(BODY_PREFIX + "pooler")]
    n_body = sum(params[n].numel() for n in body)
    k = cfg.nnz or int(cfg.density * n_body)
    ckpt, best_file, mask_file = out / "checkpoints" / "task", out / "checkpoints" / "task_best.safetensors", \
        out / "checkpoints" / "task_mask.safetensors"
    log_path = out / "task_log.csv"

    stages = [("full", cfg.full_epochs), ("sparse", cfg.sparse_epochs)]
    state = {"stage": 0, "epoch": 0, "best": -1.0, "history": [], "elapsed_s": 0.0, "identity": cfg.task_identity()}
    masks = None
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.task_lr, weight_decay=0.0)
    if resume and (ckpt / "state.json").is_file():
        saved = json.loads((ckpt / "state.json").read_text())["state"]
        if saved.get("identity") != cfg.task_identity():
            raise EdgelmError(f"{out} holds a phase-2 run with other task settings; resume with the same ones "
                              f"or delete {ckpt} to start phase 2 again")
        state = load_checkpoint(ckpt, student, opt)
        if state["stage"] == 1:
            masks = {n: m.bool() for n, m in load_file(mask_file).items()}
    started = time.perf_counter()
    total = sum(e for _, e in stages) * -(-len(train) // cfg.task_batch_size)
    done_steps = (sum(e for _, e in stages[: state["stage"]]) + state["epoch"]) * -(-len(train) // cfg.task_batch_size)
    with progress_bar("phase 2 (task, LT-SFT)", total, "step") as advance, open(log_path, "a", newline="") as log_fh:
        writer = csv.writer(log_fh)
        advance(done_steps)
        while state["stage"] < len(stages):
            stage, epochs = stages[state["stage"]]
            while state["epoch"] < epochs:
                student.train()
                for idx in _batches(len(train), cfg.task_batch_size, cfg.seed, 1000 * state["stage"] + state["epoch"]):
                    b = encode_texts(tokenizer, [train[i].text for i in idx], prefix, cfg.max_length)
                    with torch.no_grad():
                        t_out = teacher(input_ids=kept[b["input_ids"]], attention_mask=b["attention_mask"],
                                        output_hidden_states=True, output_attentions=bool(cfg.alpha_task_attn))
                    s_out = student(**b, output_hidden_states=True, output_attentions=bool(cfg.alpha_task_attn))
                    loss = cfg.alpha_kd * logit_kd(s_out.logits, t_out.logits, cfg.temperature)
                    if cfg.alpha_task_hidden:
                        loss = loss + cfg.alpha_task_hidden * hidden_mse(s_out.hidden_states, t_out.hidden_states,
                                                                         lmap, b["attention_mask"])
                    if cfg.alpha_task_attn:
                        loss = loss + cfg.alpha_task_attn * attention_mse(s_out.attentions, t_out.attentions, lmap,
                                                                          b["attention_mask"])
                    if cfg.alpha_gold:
                        loss = loss + cfg.alpha_gold * F.cross_entropy(s_out.logits, y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if masks is not None:
                        mask_gradients(params, masks)
                    opt.step()
                    advance(1, info=f"{stage} loss {loss.item():.3f}")
                acc = accuracy(student, tokenizer, [r.text for r in dev], y_dev, prefix, cfg.max_length)
                state["epoch"] += 1
                state["history"].append({"stage": stage, "epoch": state["epoch"], "dev_accuracy": acc})
                writer.writerow([stage, state["epoch"], f"{loss.item():.5f}", f"{acc:.4f}"])
                log_fh.flush()
                if acc > state["best"]:
                    state["best"] = acc
                    save_file({k: v.contiguous() for k, v in student.state_dict().items()}, best_file)
                state["elapsed_s"] += time.perf_counter() - started
                started = time.perf_counter()
                save_checkpoint(ckpt, student, opt, state)
            # End of a stage: continue from its best epoch (BiStil reloads the best checkpoint).
            student.load_state_dict(load_file(best_file))
            if stage == "full":
                masks = select_mask({n: initial[n] for n in body}, {n: params[n] for n in body}, k)
                save_file({n: m.to(torch.uint8) for n, m in masks.items()}, mask_file)
                student.load_state_dict(initial)  # reset everything, the head back to its initial values
                opt = torch.optim.AdamW(student.parameters(), lr=cfg.task_lr, weight_decay=0.0)
            state["stage"] += 1
            state["epoch"] = 0
            state["best"] = -1.0
            save_checkpoint(ckpt, student, opt, state)

    tuned = student.state_dict()
    diff = SparseDiff.between({n: initial[n] for n in body}, {n: tuned[n] for n in body}, masks)
    diff.meta = {"task": cfg.task, "labels": labels, "density": cfg.density, "k": k, "source": cfg.source,
                 "body": str(general)}
    outside = sum(int(((tuned[n] != initial[n]) & ~masks[n]).sum()) for n in body)
    if outside:
        raise RuntimeError(f"LT-SFT changed {outside} parameters outside its mask")

    save_task_model(student, tokenizer, out / "task", diff=diff,
                    head={n: tuned[n] for n in tuned if not n.startswith(BODY_PREFIX) or "pooler" in n},
                    provenance={"teacher": cfg.teacher, "task": cfg.task, "source": cfg.source, "student": str(general),
                                "languages": cfg.languages, "density": cfg.density})
    dev_acc = accuracy(student, tokenizer, [r.text for r in dev], y_dev, prefix, cfg.max_length)
    return {"task_teacher": teacher_info, "k": k, "body_parameters": n_body, "nnz": diff.nnz,
            "dev_accuracy": dev_acc, "history": state["history"], "train_seconds": round(state["elapsed_s"], 1)}
