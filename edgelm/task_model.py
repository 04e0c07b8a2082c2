"""Task models (phase 2's student, or a task-tuned teacher): the writer and the readers.

A task model is a transformers checkpoint with a head whose config names its labels: a sentence
classifier (`…ForSequenceClassification`, read as a `TaskModel`: `predict`) or a word tagger
(`…ForTokenClassification`, read as a `TaggerModel`: `tag`, `tag_words`, `entities`).
Phase 2 also stores what LT-SFT learned beside the merged model: `task_diff.safetensors` (the sparse
body difference against the phase-1 student) and `head.safetensors` (the dense head).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir
from edgelm.checkpoint import EmbeddingRecipe, encode_texts, encode_words, stamp, write_interop
from edgelm.encoder import Encoder
from edgelm.runtime.model import predictions
from edgelm.words import WordTagging


class _WithHead(Encoder):
    """An encoder checkpoint with a task head: `whole` is the transformers model, its body embeds."""

    auto_class = ""  # the transformers Auto class the weights load into

    def __init__(self, whole, tokenizer, recipe: EmbeddingRecipe, path: Path, max_length: int = 512):
        super().__init__(whole.base_model, tokenizer, recipe, path, max_length=max_length)
        self.whole = whole
        self.labels = [whole.config.id2label[i] for i in range(whole.config.num_labels)]

    @classmethod
    def model_class(cls):
        import transformers

        return getattr(transformers, cls.auto_class)

    def describe(self) -> dict:
        """The encoder's report (parameters: the body, as for any encoder), with the head and its labels."""
        head = sum(p.numel() for p in self.whole.parameters()) - self.num_parameters
        return super().describe() | {"labels": self.labels, "head_parameters": head}


class TaskModel(_WithHead):
    """A sentence classifier: `predict` gives labels; `embed` (its body, the recipe's pooling) still works."""

    head, what, auto_class = "sequence", "a sentence classifier", "AutoModelForSequenceClassification"

    def logits(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Class logits (float32, one row per text)."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = encode_texts(self.tokenizer, texts[i : i + batch_size], self.recipe.prefix, self.max_length)
                out.append(self.whole(**batch).logits.float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def predict(self, texts: list[str]) -> list[dict]:
        """Label, its probability and every class's probability per text (as a classifier bundle returns them)."""
        return predictions(self.logits(list(texts)), self.labels)


class TaggerModel(WordTagging, _WithHead):
    """A word tagger (named entities, parts of speech): `tag` raw text, `tag_words` pre-split words."""

    head, what, auto_class = "token", "a word tagger", "AutoModelForTokenClassification"

    @property
    def scheme(self) -> str:
        from edgelm.data.tasks import is_bio

        return "bio" if is_bio(set(self.labels)) else "tags"

    def describe(self) -> dict:
        return super().describe() | {"scheme": self.scheme}

    def _word_probs(self, sentences: list[list[str]], batch_size: int = 32) -> list[list]:
        """Per sentence, per word: class probabilities at the word's first sub-word (None if cut off)."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(sentences), batch_size):
                chunk = sentences[i : i + batch_size]
                inputs, firsts = encode_words(self.tokenizer, chunk, self.recipe.prefix, self.max_length)
                probs = self.whole(**inputs).logits.float().softmax(-1).numpy()
                out += [[probs[k, p] if p >= 0 else None for p in first] for k, first in enumerate(firsts)]
        return out


def save_task_model(model, tokenizer, folder: Path, *, provenance: dict | None = None, diff=None,
                    head: dict | None = None, notes: dict[str, dict] | None = None) -> None:
    """Write a task model atomically: the merged classifier and tokenizer, with what LT-SFT learned
    (`diff`, a `kernels.sparse_diff.SparseDiff`, and the dense `head` tensors) and JSON `notes` beside it."""
    from safetensors.torch import save_file

    stamp(model.config, "task_model", provenance)
    with atomic_dir(folder, replace=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_interop(tmp, model.config, name=Path(folder).name, parameters=model.num_parameters())
        if diff is not None:
            diff.save(tmp / "task_diff.safetensors")
        if head is not None:
            save_file({k: v.contiguous() for k, v in head.items()}, tmp / "head.safetensors")
        for name, content in (notes or {}).items():
            (tmp / name).write_text(json.dumps(content, indent=1))
