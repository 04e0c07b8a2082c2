"""What a loaded model can do, as types: `Embedder`, `Classifier`, `Tagger`.

Everything `edgelm.load` returns — an encoder checkpoint, a task model, a routed model, a bundle on
its device runtime — satisfies one or more of these, and evaluation and the command line dispatch on
them (`isinstance(model, Classifier)`) instead of on which class or folder a model came from.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Described(Protocol):
    def describe(self) -> dict:
        """What a report says about the model: path, kind, parameters, layers, recipe, and for bundles and
        routed models how they ran (quantization, runtime, experts per sentence, truncated texts)."""


@runtime_checkable
class Embedder(Described, Protocol):
    """Turns sentences into vectors (float32, one row per text, in the input's order)."""

    def embed(self, texts: list[str], *, batch_size: int = ..., progress: str | None = None,
              language: str | None = None, topic: str | None = None) -> np.ndarray:
        """`language` / `topic` are what the caller knows about the texts (a routed model's oracle uses them)."""


@runtime_checkable
class Classifier(Described, Protocol):
    """Labels whole sentences with one of `labels`."""

    labels: list[str]

    def predict(self, texts: list[str]) -> list[dict]:
        """Per text: {"label", "score" (its probability), "probabilities" (label -> probability)}."""


@runtime_checkable
class Tagger(Described, Protocol):
    """Labels every word of a sentence (token classification: POS, named entities)."""

    labels: list[str]

    def tag(self, texts: list[str]) -> list[list[dict]]:
        """Per text, per word: {"word", "tag", "score", "start", "end"} (character offsets)."""

    def tag_words(self, sentences: list[list[str]]) -> list[list[dict]]:
        """The same for sentences already split into words (CoNLL data): one result per given word."""
