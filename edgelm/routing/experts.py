"""Training one expert: a copy of the student's top layers distilled further from the teacher on its
domain's cached body states (hidden-state MSE, sentence cosine, the parallel anchor)."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from edgelm.kernels.pooling import masked_mean_torch
from edgelm.progress import progress_bar
from edgelm.routing.cache import CachedText
from edgelm.routing.config import RouteConfig
from edgelm.routing.model import ExpertStack


def _expert_loss(expert, text: CachedText, idx, cfg: RouteConfig, hw) -> torch.Tensor:
    b, t, m = (x.to(hw.device) for x in text.batch(idx))
    with hw.precision.autocast():
        h = expert(b, m)
    h = h.float()
    mk = m.unsqueeze(-1).float()
    loss = (((h - t) ** 2) * mk).sum() / (mk.sum() * h.shape[-1])  # hidden-state MSE to the teacher's top layer
    s_vec, t_vec = masked_mean_torch(h, m), masked_mean_torch(t, m)
    loss = loss + (1 - F.cosine_similarity(s_vec, t_vec, dim=-1)).mean()
    if cfg.alpha_parallel:
        keep = text.has_anchor[torch.as_tensor(idx)].to(hw.device)
        if keep.any():
            a = text.anchor[torch.as_tensor(idx)].to(hw.device)[keep]
            loss = loss + cfg.alpha_parallel * (1 - F.cosine_similarity(s_vec[keep], a, dim=-1)).mean()
    return loss


def train_expert(top, texts: dict[str, CachedText], keys: list[str], name: str, train_idx: dict[str, np.ndarray],
                 cfg: RouteConfig, hardware=None) -> tuple[ExpertStack, dict]:
    """A copy of the top layers distilled on the text of `keys` (batches alternating between them):
    source + the language for a language expert, the topic's text for a topic expert."""
    from edgelm.distillation.batches import BalancedBatches
    from edgelm.distillation.general import lr_at
    from edgelm.distillation.hardware import Hardware

    hw = hardware or Hardware.resolve("cpu")
    torch.manual_seed(cfg.seed)
    expert = copy.deepcopy(top).to(hw.device).train()
    opt = torch.optim.AdamW(expert.parameters(), lr=cfg.lr)
    scaler = hw.precision.scaler()
    sizes = {key: len(train_idx[key]) for key in keys}
    batches = BalancedBatches(sizes, cfg.batch_size, cfg.seed)
    started, losses = time.perf_counter(), []
    with progress_bar(f"expert {name}", cfg.steps, "step") as advance:
        for step in range(cfg.steps):
            key, local = batches(step)
            loss = _expert_loss(expert, texts[key], train_idx[key][local], cfg, hw)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
            advance(1, info=f"loss {loss.item():.4f}")
    w = max(1, min(20, cfg.steps // 4))  # loss averaged over the first and last steps
    return expert.to("cpu").eval(), {"steps": cfg.steps, "first_loss": round(float(np.mean(losses[:w])), 5),
                           "last_loss": round(float(np.mean(losses[-w:])), 5),
                           "seconds": round(time.perf_counter() - started, 1)}
