"""Token states -> one vector per input: the masked mean every stage uses (distillation losses, the
encoder's sentence embeddings, the exported graphs, the router's pooled scores), in torch and numpy."""

from __future__ import annotations

from typing import Any

import numpy as np


def masked_mean_np(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, tokens, d) and (batch, tokens) -> (batch, d), averaging real tokens only."""
    m = mask.astype(x.dtype)[..., None]
    return (x * m).sum(1) / np.clip(m.sum(1), 1e-9, None)


def masked_mean_torch(x: Any, mask: Any) -> Any:
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)


def sentence_vectors(hidden: Any, mask: Any, pooling: str = "mean", normalize: bool = True) -> Any:
    """Sentence embeddings from token states as a model's recipe says: CLS or masked mean, then L2."""
    import torch

    vec = hidden[:, 0] if pooling == "cls" else masked_mean_torch(hidden, mask)
    return torch.nn.functional.normalize(vec, dim=-1) if normalize else vec
