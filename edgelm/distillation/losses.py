"""Distillation losses (TinyBERT-style, as BiStil uses them), over a student -> teacher layer map.

`hidden_states` include index 0, the embedding output; student layer i is matched to teacher layer
`layer_map[i]`. Padding never counts: hidden states are compared on real tokens only, attention
rows of real query tokens on the keys the teacher attends to (masked keys have probability 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgelm.kernels.pooling import masked_mean_torch


def hidden_mse(s_hidden, t_hidden, layer_map: list[int], mask: torch.Tensor,
               tokens: float | None = None) -> torch.Tensor:
    """Mean over aligned layers (embeddings included) of the MSE between token states.

    `tokens`: the real-token count to divide by (default: this batch's). A micro-batch of a larger
    batch passes the whole batch's count, so the pieces' losses add up to the whole batch's loss.
    """
    pairs = [(0, 0)] + [(i + 1, j + 1) for i, j in enumerate(layer_map)]
    m = mask.unsqueeze(-1).float()
    denom = (m.sum() if tokens is None else tokens) * s_hidden[0].shape[-1]
    losses = [(((s_hidden[i].float() - t_hidden[j].float()) ** 2) * m).sum() / denom for i, j in pairs]
    return torch.stack(losses).mean()


def attention_mse(s_att, t_att, layer_map: list[int], mask: torch.Tensor,
                  pairs: float | None = None) -> torch.Tensor:
    """Mean over student layers of the MSE between attention probabilities (all heads).

    `pairs`: the count of (query, key) pairs of real tokens to divide by, per head (default: this
    batch's, the sum of squared lengths); see `hidden_mse` for why a micro-batch passes its batch's.
    """
    if s_att is None or t_att is None or len(s_att) == 0 or len(t_att) == 0:
        raise ValueError("attention loss needs attention probabilities from both models (eager attention)")
    # valid[b, 1, q, k]: real query row and a key the teacher can attend to
    valid = mask[:, None, :, None].bool() & mask[:, None, None, :].bool()
    heads = s_att[0].shape[1]
    denom = (valid.sum() if pairs is None else pairs) * heads
    losses = []
    for i, j in enumerate(layer_map):
        v = valid.expand_as(s_att[i])
        losses.append(((s_att[i].float() - t_att[j].float()) ** 2)[v].sum() / denom)
    return torch.stack(losses).mean()


def embedding_cosine(s_last: torch.Tensor, t_last: torch.Tensor, mask: torch.Tensor,
                     sentences: float | None = None) -> torch.Tensor:
    """1 - cosine between mean-pooled sentence embeddings: the teacher is an embedding model.

    `sentences`: what to divide the sum by (default: this batch's size).
    """
    cos = F.cosine_similarity(masked_mean_torch(s_last.float(), mask), masked_mean_torch(t_last.float(), mask), dim=-1)
    return (1 - cos).sum() / (len(cos) if sentences is None else sentences)


def logit_kd(s_logits: torch.Tensor, t_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """Soft cross-entropy to the teacher's tempered distribution (BiStil: T=2, no T^2 scaling)."""
    t = F.softmax(t_logits / temperature, dim=-1)
    return -(t * F.log_softmax(s_logits / temperature, dim=-1)).sum(-1).mean()
