"""What phase 2 trains on: a task's labelled rows, batched for a sentence classifier or a word tagger.

`phase_two_data` picks the rows: SIB-200 (the default task) trains on the source language, as BiStil
does; a user's task trains on every run language that has a training split — the source (zero-shot
to the target, NollySenti), the target itself (in-language, AfriSenti), or both — and the run
records which. `batch` turns rows into model inputs and targets: one label per sentence, or one tag
per word at its first sub-word token (-100 elsewhere, ignored), and `pick` lines logits up with them,
so one training loop serves both kinds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgelm.checkpoint import encode_texts, encode_words
from edgelm.data.tasks import Sentence, Tagged, Task, load_task
from edgelm.errors import EdgelmError

IGNORE = -100  # targets of tokens that are not a word's first sub-word


@dataclass
class PhaseTwoData:
    kind: str  # "sentence" | "tagging"
    scheme: str  # "label" | "bio" | "tags"
    labels: list[str]
    train: list
    dev: list
    setting: str  # where the labels are: zero-shot (source only), in-language (targets only), or both
    languages: list[str]
    identity: dict = field(default_factory=dict)
    dev_note: str = ""
    report: dict = field(default_factory=dict)  # what was read: formats, examples per split, stray I- tags

    @property
    def index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def metric(self) -> str:
        return {"label": "accuracy", "bio": "entity F1", "tags": "word accuracy"}[self.scheme]

    def batch(self, tokenizer, rows: list, prefix: str, max_length: int) -> tuple[dict, torch.Tensor]:
        """Model inputs and targets for `rows`: (batch,) labels, or (batch, tokens) tags with IGNORE."""
        index = self.index
        if self.kind == "sentence":
            return encode_texts(tokenizer, [r.text for r in rows], prefix, max_length), \
                torch.tensor([index[r.label] for r in rows])
        inputs, firsts = encode_words(tokenizer, [list(r.words) for r in rows], prefix, max_length)
        targets = torch.full(inputs["input_ids"].shape, IGNORE, dtype=torch.long)
        for i, (r, first) in enumerate(zip(rows, firsts)):
            for tag, position in zip(r.tags, first):
                if position >= 0:
                    targets[i, position] = index[tag]
        return inputs, targets

    def baseline(self) -> tuple[str, float]:
        """The label (or tag) most frequent in training and the dev score of always answering it: what a
        model that learnt nothing reaches (0 entity F1 for BIO, where the most frequent tag is O)."""
        if self.kind == "sentence":
            counts = Counter(r.label for r in self.train)
        else:
            counts = Counter(tag for r in self.train for tag in r.tags)
        top = counts.most_common(1)[0][0]
        if self.scheme == "bio":
            return top, 0.0
        dev = [r.label for r in self.dev] if self.kind == "sentence" else [t for r in self.dev for t in r.tags]
        return top, sum(x == top for x in dev) / max(1, len(dev))

    @staticmethod
    def pick(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of what is scored: every sentence, or the first sub-word of every word."""
        if logits.dim() == 2:
            return logits, targets
        keep = targets != IGNORE
        return logits[keep], targets[keep]

    @torch.no_grad()
    def score(self, model, tokenizer, rows: list, prefix: str, max_length: int) -> float:
        """The task's metric of `model` on `rows` (dev): accuracy, entity F1 or word accuracy."""
        from edgelm.scores import entity_scores, word_accuracy

        model.eval()
        device = next(model.parameters()).device
        if self.kind == "sentence":  # as phase 2 always scored sentences: batches of 64, argmax of the logits
            preds = []
            for i in range(0, len(rows), 64):
                b = encode_texts(tokenizer, [r.text for r in rows[i : i + 64]], prefix, max_length)
                preds.append(model(**{k: v.to(device) for k, v in b.items()}).logits.argmax(-1).cpu().numpy())
            gold = np.array([self.index[r.label] for r in rows])
            return float(np.mean(np.concatenate(preds) == gold))
        gold, pred = [], []
        for i in range(0, len(rows), 64):
            chunk = rows[i : i + 64]
            inputs, firsts = encode_words(tokenizer, [list(r.words) for r in chunk], prefix, max_length)
            best = model(**{k: v.to(device) for k, v in inputs.items()}).logits.argmax(-1).cpu()
            for k, (r, first) in enumerate(zip(chunk, firsts)):
                gold.append(list(r.tags))
                pred.append([self.labels[int(best[k, p])] if p >= 0 else "O" if self.scheme == "bio" else self.labels[0]
                             for p in first])
        return entity_scores(gold, pred)["f1"] if self.scheme == "bio" else word_accuracy(gold, pred)


def _sib200(cfg, data_root: Path | None) -> PhaseTwoData:
    from edgelm.data.sib200 import load_sib200, sib200_labels

    if data_root is None:
        raise EdgelmError("phase 2 needs SIB-200 task data: pass --data")
    labels = sib200_labels(data_root)
    rows = {split: [Sentence(r.text, r.label) for r in load_sib200(data_root, cfg.source, split)]
            for split in ("train", "dev")}
    return PhaseTwoData("sentence", "label", labels, rows["train"], rows["dev"], "zero-shot", [cfg.source],
                        {"name": "sib200", "kind": "sentence", "labels": labels})


def unlabelled_rows(data: PhaseTwoData, texts: Mapping[str, Iterable[str]], n: int, seed: int) -> list:
    """Up to `n` sentences of unlabelled text (split evenly over its languages, a seeded uniform sample of
    each stream) as rows of the task's kind, their label or tags a placeholder: the task teacher's
    predictions are their only targets (`--task-target-share`)."""
    from edgelm.words import split_words

    rows, want = [], max(1, n // len(texts))
    for k, (lang, text) in enumerate(texts.items()):
        rng = np.random.default_rng([seed, 17, k])
        sample: list[str] = []
        for i, line in enumerate(text):  # reservoir sampling: one pass, `want` lines in memory
            if len(sample) < want:
                sample.append(line)
            elif (j := int(rng.integers(0, i + 1))) < want:
                sample[j] = line
        for line in sample:
            if data.kind == "sentence":
                rows.append(Sentence(line, data.labels[0]))
            elif words := tuple(w for w, _, _ in split_words(line)):
                rows.append(Tagged(words, (data.labels[0],) * len(words)))
    return rows


def phase_two_data(cfg, data_root: Path | None) -> PhaseTwoData:
    """The rows phase 2 learns from (see the module docstring); a one-line error when there are none."""
    if cfg.task == "sib200":
        return _sib200(cfg, data_root)
    task: Task = load_task(cfg.task)
    languages = [lang for lang in cfg.languages if task.has(lang, "train")]
    if not languages:
        raise EdgelmError(f"task {cfg.task} has no training split in {', '.join(cfg.languages)} (it has training data "
                          f"in: {', '.join(l for l in task.languages if task.has(l, 'train')) or 'none'})")
    setting = ("zero-shot" if languages == [cfg.source] else "in-language" if cfg.source not in languages
               else "source and target")
    train = task.split("train", languages)
    dev = task.split("dev", languages)
    note = f"dev split of {', '.join(l for l in languages if task.has(l, 'dev'))}"
    if not dev:  # no dev split: a fixed tenth of the training rows picks the best epoch instead
        order = np.random.default_rng([cfg.seed, 11]).permutation(len(train))
        held = set(order[: max(1, len(train) // 10)].tolist())
        dev = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
        note = f"no dev split: {len(dev)} training rows held out"
    return PhaseTwoData(task.kind, task.scheme, task.labels, train, dev, setting, languages,
                        {"name": str(cfg.task), **task.identity()}, note, task.describe())
