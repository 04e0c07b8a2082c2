"""Bitext retrieval (Tatoeba; NTREX news): is a sentence's nearest neighbour (cosine) its translation?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgelm.data.ntrex import load_ntrex
from edgelm.data.tatoeba import load_tatoeba


@dataclass
class TatoebaScore:
    language: str
    to_eng: float  # accuracy retrieving the English translation of each xx sentence
    from_eng: float  # accuracy retrieving the xx translation of each English sentence
    accuracy: float  # mean of both directions
    n: int


def retrieval_accuracy(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Top-1 accuracy a→b and b→a for row-aligned embeddings (L2-normalised or not)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    sim = a @ b.T
    gold = np.arange(len(a))
    return float(np.mean(sim.argmax(1) == gold)), float(np.mean(sim.argmax(0) == gold))


def evaluate_tatoeba(encoder, root: Path, languages: list[str]) -> dict:
    """Tatoeba retrieval accuracy in both directions for each language paired with English."""
    return _retrieval(encoder, root, languages, load_tatoeba, "Tatoeba")


def evaluate_ntrex(encoder, root: Path, languages: list[str]) -> dict:
    """NTREX-128 (news, 1,997 sentences) retrieval accuracy in both directions, each language against English."""
    return _retrieval(encoder, root, languages, load_ntrex, "NTREX")


def _retrieval(encoder, root: Path, languages: list[str], loader, name: str) -> dict:
    scores = []
    for lang in languages:
        src, eng = loader(root, lang)
        x = encoder.embed(src, progress=f"{name} {lang}", language=lang)
        e = encoder.embed(eng, progress=f"{name} {lang} eng", language="eng_Latn")
        to_eng, from_eng = retrieval_accuracy(x, e)
        scores.append(TatoebaScore(lang, to_eng, from_eng, (to_eng + from_eng) / 2, len(src)))
    return {"scores": [asdict(s) for s in scores]}
