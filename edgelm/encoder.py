"""Load any edgelm-compatible checkpoint and turn text into sentence embeddings.

One loader for every model: the bundled teacher, a local transformers folder, a hub checkpoint, a
distilled student. Weights load from safetensors only and no code from the folder ever runs. The
embedding recipe (pooling, normalization, prefix) comes from the folder's `config.json` `edgelm`
block, so a model says how it wants to be used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.progress import progress_bar
from edgelm.teacher.registry import resolve_model

_POOLER_MODELS = {"bert", "roberta", "xlm-roberta", "camembert"}
_TOKENIZER_SOURCES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "vocab.txt")


@dataclass(frozen=True)
class EmbeddingRecipe:
    """How token states become one sentence vector."""

    pooling: str = "mean"  # mean over the attention mask, or "cls"
    normalize: bool = True  # L2-normalise the pooled vector
    prefix: str = ""  # prepended to every text (e5: "query: ")

    @classmethod
    def from_config(cls, config, name: str) -> EmbeddingRecipe:
        meta = getattr(config, "edgelm", None) or {}
        prefixes = meta.get("prefixes", {})
        prefix = prefixes.get(meta.get("default_prefix", ""), "")
        if not meta and "e5" in name.lower():
            prefix = "query: "  # e5 models need it (model card), even when not converted by edgelm
        return cls(meta.get("pooling", "mean"), bool(meta.get("normalize", True)), prefix)


def check_checkpoint(path: Path) -> None:
    """Raise a one-line error unless `path` holds a config, safetensors weights and a tokenizer."""
    if not (path / "config.json").is_file():
        raise EdgelmError(f"{path} is not a model checkpoint: it has no config.json")
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").is_file():
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt*")]
        hint = f" (it has {', '.join(pickled)}: pickle files are never loaded)" if pickled else ""
        raise EdgelmError(f"{path} has no safetensors weights{hint}")
    if not any((path / name).is_file() for name in _TOKENIZER_SOURCES):
        raise EdgelmError(f"{path} has no tokenizer (tokenizer.json)")


def load_tokenizer(path: Path):
    """The folder's fast tokenizer, loaded offline-safe."""
    quiet_optional_imports()
    from transformers import AutoTokenizer

    # fix_mistral_regex=False silences a spurious transformers 4.57 warning for local folders.
    return AutoTokenizer.from_pretrained(path, use_fast=True, fix_mistral_regex=False)


def quiet_optional_imports() -> None:
    """transformers imports torchao when it is installed (the tflite extra brings it), and torchao
    greets with missing-CUDA-kernel and deprecation lines; import it once with those silenced."""
    import importlib.util
    import logging
    import sys

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's enum registrations
    if "torchao" not in sys.modules and importlib.util.find_spec("torchao") is not None:
        from edgelm.quiet import quiet_native_output

        with quiet_native_output():
            import torchao  # noqa: F401


def load_model(path: Path, model_class=None, **kwargs):
    """Load weights from safetensors (never pickle, never remote code), in eval mode."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized" heads are expected here, not news
    quiet_optional_imports()
    config = AutoConfig.from_pretrained(path)
    model_class = model_class or AutoModel
    if model_class is AutoModel and config.model_type in _POOLER_MODELS:
        kwargs.setdefault("add_pooling_layer", False)  # e5 has no pooler; mean pooling never uses it
    try:
        model = model_class.from_pretrained(path, use_safetensors=True, trust_remote_code=False, **kwargs)
    except OSError as exc:
        raise EdgelmError(f"cannot load weights from {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def encode_texts(tokenizer, texts: list[str], prefix: str, max_length: int):
    """Token ids and mask (torch) for prefix + text, truncated to `max_length`, padded to the longest."""
    return tokenizer([prefix + t for t in texts], padding=True, truncation=True, max_length=max_length,
                     return_tensors="pt")


class Encoder:
    """A transformers encoder with its tokenizer and embedding recipe."""

    def __init__(self, model, tokenizer, recipe: EmbeddingRecipe, path: Path, max_length: int = 512):
        self.model, self.tokenizer, self.recipe, self.path = model, tokenizer, recipe, path
        self.max_length = max_length

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], *, prefix: str | None = None,
             max_length: int = 512) -> Encoder:
        """Load a bundled teacher name, a folder or a hub id; `prefix` overrides the recipe's.

        A routed folder (`edgelm route train`) loads as a `RoutedEncoder`; `FOLDER@ROUTING` picks its
        routing: learned (default), oracle, dense, or one expert's name. An exported bundle loads as a
        `BundleEncoder`: its device runtime, not torch, embeds.
        """
        from edgelm.evaluate.bundle import BundleEncoder, is_bundle
        from edgelm.route.model import split_spec

        if is_bundle(name_or_path):
            if prefix is not None:
                raise EdgelmError("a bundle's prefix is fixed at export; --prefix applies to checkpoints")
            return BundleEncoder.load(name_or_path)

        routed, routing = split_spec(name_or_path)
        if routed is not None:
            from edgelm.route.encoder import RoutedEncoder

            return RoutedEncoder.load(routed, routing, prefix=prefix, max_length=max_length)
        path = resolve_model(name_or_path)
        check_checkpoint(path)
        model = load_model(path)
        tokenizer = load_tokenizer(path)
        recipe = EmbeddingRecipe.from_config(model.config, str(name_or_path))
        if prefix is not None:
            recipe = EmbeddingRecipe(recipe.pooling, recipe.normalize, prefix)
        limit = min(max_length, getattr(model.config, "max_position_embeddings", max_length))
        return cls(model, tokenizer, recipe, path, max_length=limit)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def describe(self) -> dict:
        """What an evaluation report says about the model."""
        config = self.model.config
        return {"parameters": self.num_parameters, "layers": getattr(config, "num_hidden_layers", None),
                "vocab_size": getattr(config, "vocab_size", None),
                "source": (getattr(config, "edgelm", None) or {}).get("source")}

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
