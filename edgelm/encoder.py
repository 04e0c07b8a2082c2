"""Encoder checkpoints (the teacher, a transformers folder, a distilled student): the writer and the reader.

`save_encoder` writes a student folder (safetensors, tokenizer.json, a config that says what it is);
`Encoder.load` reads any encoder checkpoint and turns text into sentence embeddings. The embedding
recipe (pooling, normalization, prefix) comes from the folder's `config.json` `edgelm` block, so a
model says how it wants to be used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgelm.atomic import atomic_dir
from edgelm.checkpoint import (EmbeddingRecipe, check_checkpoint, describe_checkpoint, encode_texts, load_model,
                               load_tokenizer, stamp, task_head, write_interop)
from edgelm.errors import EdgelmError
from edgelm.progress import progress_bar
from edgelm.teacher.registry import resolve_model


class Encoder:
    """A transformers encoder with its tokenizer and embedding recipe."""

    def __init__(self, model, tokenizer, recipe: EmbeddingRecipe, path: Path, max_length: int = 512):
        self.model, self.tokenizer, self.recipe, self.path = model, tokenizer, recipe, path
        self.max_length = max_length

    head: str | None = None  # the checkpoint head a subclass reads (checkpoint.task_head): none here
    what = "an encoder checkpoint"

    @classmethod
    def model_class(cls):
        """The transformers class the weights load into (None: AutoModel, the bare encoder)."""
        return None

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], *, prefix: str | None = None,
             max_length: int = 512) -> Encoder:
        """Load a bundled teacher name, a checkpoint folder or a hub id; `prefix` overrides the recipe's.

        Routed models and bundles are other kinds: `edgelm.load` opens any of them.
        """
        path = resolve_model(name_or_path)
        check_checkpoint(path)
        if cls.head is not None and task_head(path) != cls.head:
            raise EdgelmError(f"{path} is not {cls.what} (no {cls.head}-classification head)")
        model = load_model(path, cls.model_class())
        recipe = EmbeddingRecipe.from_config(model.config, str(name_or_path)).with_prefix(prefix)
        limit = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
        return cls(model, load_tokenizer(path), recipe, path, max_length=limit)

    @property
    def num_parameters(self) -> int:
        """The encoder body's parameters (a classifier's pooler belongs to its head)."""
        return sum(p.numel() for n, p in self.model.named_parameters() if not n.startswith("pooler."))

    def describe(self) -> dict:
        """What an evaluation report says about the model."""
        config = self.model.config
        return {"path": str(self.path), "kind": describe_checkpoint(self.path)["kind"],
                "parameters": self.num_parameters, "layers": getattr(config, "num_hidden_layers", None), "vocab_size": getattr(config, "vocab_size", None),
                "source": (getattr(config, "edgelm", None) or {}).get("source"), "recipe": self.recipe.as_dict()}

    def tokenize(self, texts: list[str]):
        """Token ids and mask for `texts` with the recipe's prefix, padded to the longest."""
        return encode_texts(self.tokenizer, texts, self.recipe.prefix, self.max_length)

    def pool(self, hidden, mask):
        """Sentence vectors from token states (torch tensors), as the recipe says."""
        from edgelm.kernels.pooling import sentence_vectors

        return sentence_vectors(hidden, mask, self.recipe.pooling, self.recipe.normalize)

    def _vectors(self, batch, known: dict[str, str | None]):
        return self.pool(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def embed(self, texts: list[str], *, batch_size: int = 64, progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        """Embed `texts` (float32, one row each). Batches are built from length-sorted texts.

        `language` and `topic` are what the caller knows about the texts: a routed model's oracle
        routing takes the one its experts are split by.
        """
        import torch

        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode(), progress_bar(progress or "embedding", len(texts), "sent",
                                                  enabled=None if progress else False) as advance:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenize([texts[i] for i in idx])
                out[idx] = self._vectors(batch, {"languages": language, "topics": topic}).float().numpy()
                advance(len(idx))
        return out


def save_encoder(model, tokenizer_json: dict, folder: Path, max_length: int, *, kind: str = "student",
                 provenance: dict | None = None) -> None:
    """Write an encoder checkpoint (safetensors, tokenizer.json and configs, stamped with its kind) atomically."""
    from tokenizers import Tokenizer

    from edgelm.teacher.tokenizer_build import wrap_for_transformers

    tok = wrap_for_transformers(Tokenizer.from_str(json.dumps(tokenizer_json)), max_length)
    stamp(model.config, kind, provenance)
    with atomic_dir(folder, replace=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_interop(tmp, model.config, name=Path(folder).name, parameters=model.num_parameters(),
                      max_length=max_length)
