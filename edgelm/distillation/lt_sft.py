"""Lottery-Ticket Sparse Fine-Tuning: pick the K parameters that moved most, train only those.

One global threshold over every body tensor (word embeddings included), as BiStil does; the task
head stays dense. Masked entries stay exactly at their initial values: their gradients are zeroed
and weight decay is 0, so AdamW's update for them is exactly 0.
"""

from __future__ import annotations

import torch

from edgelm.errors import EdgelmError


def select_mask(initial: dict[str, torch.Tensor], trained: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Boolean masks of the `k` entries with the largest |trained - initial| across all tensors."""
    if k < 1:
        raise EdgelmError("LT-SFT must keep at least one parameter")
    deltas = {n: (trained[n].detach() - initial[n]).abs().reshape(-1) for n in initial}
    flat = torch.cat(list(deltas.values()))
    k = min(k, flat.numel())
    threshold = torch.topk(flat, k, sorted=True).values[-1]
    masks = {}
    room = k - int(sum(int((d > threshold).sum()) for d in deltas.values()))  # ties at the threshold
    for name, d in deltas.items():
        m = d > threshold
        if room > 0:
            ties = torch.nonzero(d == threshold).reshape(-1)[:room]
            m[ties] = True
            room -= ties.numel()
        masks[name] = m.reshape(initial[name].shape)
    return masks


def mask_gradients(params: dict[str, torch.nn.Parameter], masks: dict[str, torch.Tensor]) -> None:
    """Zero the gradient of every entry outside its mask (call after backward)."""
    for name, mask in masks.items():
        p = params[name]
        if p.grad is not None:
            p.grad.mul_(mask.to(p.grad.dtype))
