"""Task models (a sequence classifier: phase 2's student, or a task-tuned teacher): the writer and the reader.

A task model is a transformers `…ForSequenceClassification` checkpoint whose config names its labels.
Phase 2 also stores what LT-SFT learned beside the merged model: `task_diff.safetensors` (the sparse
body difference against the phase-1 student) and `head.safetensors` (the dense head).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir
from edgelm.checkpoint import (EmbeddingRecipe, check_checkpoint, encode_texts, head_labels, load_model, load_tokenizer,
                               stamp)
from edgelm.encoder import Encoder
from edgelm.errors import EdgelmError
from edgelm.runtime.model import predictions
from edgelm.teacher.registry import resolve_model


class TaskModel(Encoder):
    """A sentence classifier: `predict` gives labels; `embed` (its body, the recipe's pooling) still works."""

    def __init__(self, classifier, tokenizer, recipe: EmbeddingRecipe, path: Path, max_length: int = 512):
        super().__init__(classifier.base_model, tokenizer, recipe, path, max_length=max_length)
        self.classifier = classifier
        self.labels = [classifier.config.id2label[i] for i in range(classifier.config.num_labels)]

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], *, prefix: str | None = None,
             max_length: int = 512) -> TaskModel:
        from transformers import AutoModelForSequenceClassification

        path = resolve_model(name_or_path)
        check_checkpoint(path)
        if head_labels(path) is None:
            raise EdgelmError(f"{path} is not a task model (no sequence-classification head)")
        classifier = load_model(path, AutoModelForSequenceClassification)
        recipe = EmbeddingRecipe.from_config(classifier.config, str(name_or_path)).with_prefix(prefix)
        limit = min(max_length, getattr(classifier.config, "max_position_embeddings", max_length))
        return cls(classifier, load_tokenizer(path), recipe, path, max_length=limit)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.classifier.parameters())

    def describe(self) -> dict:
        return super().describe() | {"labels": self.labels}

    def logits(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Class logits (float32, one row per text)."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = encode_texts(self.tokenizer, texts[i : i + batch_size], self.recipe.prefix, self.max_length)
                out.append(self.classifier(**batch).logits.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, texts: list[str]) -> list[dict]:
        """Label, its probability and every class's probability per text (as a classifier bundle returns them)."""
        return predictions(self.logits(list(texts)), self.labels)


def save_task_model(model, tokenizer, folder: Path, *, provenance: dict | None = None, diff=None,
                    head: dict | None = None, notes: dict[str, dict] | None = None) -> None:
    """Write a task model atomically: the merged classifier and tokenizer, with what LT-SFT learned
    (`diff`, a `kernels.sparse_diff.SparseDiff`, and the dense `head` tensors) and JSON `notes` beside it."""
    from safetensors.torch import save_file

    stamp(model.config, "task_model", provenance)
    with atomic_dir(folder, replace=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if diff is not None:
            diff.save(tmp / "task_diff.safetensors")
        if head is not None:
            save_file({k: v.contiguous() for k, v in head.items()}, tmp / "head.safetensors")
        for name, content in (notes or {}).items():
            (tmp / name).write_text(json.dumps(content, indent=1))
