"""Fitting the SCAR router on cached body states of labelled text, and scoring it on the held-out share."""

from __future__ import annotations

import time

import numpy as np
import torch

from edgelm.kernels.routing import RouterWeights, route_numpy
from edgelm.progress import progress_bar
from edgelm.routing.cache import CachedText, router_classes
from edgelm.routing.config import GENERAL, RouteConfig
from edgelm.routing.router import ScarRouter, train_router


def _router_data(texts: dict[str, CachedText], idx: dict[str, np.ndarray], label: dict[str, int]):
    rows = [(texts[lang].body[i], label[lang]) for lang in label for i in idx[lang]]
    width = max(r.shape[0] for r, _ in rows)
    h = torch.zeros(len(rows), width, rows[0][0].shape[1])
    m = torch.zeros(len(rows), width, dtype=torch.long)
    for k, (r, _) in enumerate(rows):
        h[k, : r.shape[0]], m[k, : r.shape[0]] = r, 1
    return h, m, torch.tensor([y for _, y in rows])


def fit_router(cfg: RouteConfig, names: list[str], texts: dict[str, CachedText],
               splits: dict[str, tuple[np.ndarray, np.ndarray]], hidden_size: int):
    """Train the router on the training split of every group's body states; score it on the held-out split."""
    label = router_classes(cfg, names)
    h, m, y = _router_data(texts, {l: s[0] for l, s in splits.items()}, label)
    torch.manual_seed(cfg.seed)
    router = ScarRouter(hidden_size, len(names), key_dim=cfg.key_dim, temperature=cfg.temperature)
    t0 = time.perf_counter()
    with progress_bar("router", 1, "fit") as advance:
        losses = train_router(router, h, m, y, steps=cfg.router_steps, lr=cfg.router_lr, balance=cfg.balance,
                              tau=cfg.tau, seed=cfg.seed)
        advance(1)
    hh, mh, yh = _router_data(texts, {l: s[1] for l, s in splits.items()}, label)
    general_index = names.index(GENERAL) if cfg.always_general else None
    routed = route_numpy(RouterWeights.from_torch(router.eval()), hh.numpy(), mh.numpy(), cfg.tau, cfg.k_max, general_index)
    pred = routed["weights"].argmax(1)
    per_class = {names[c]: round(float((pred[yh.numpy() == c] == c).mean()), 4) for c in sorted(set(y.tolist()))}
    w = max(1, min(20, cfg.router_steps // 4))
    return router, {"steps": cfg.router_steps, "first_loss": round(float(np.mean(losses[:w])), 4),
                    "last_loss": round(float(np.mean(losses[-w:])), 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "heldout_sentences": int(len(yh)), "heldout_accuracy": round(float((pred == yh.numpy()).mean()), 4),
                    "heldout_accuracy_per_expert": per_class,
                    "heldout_mean_experts": round(float(routed["chosen"].sum(1).mean()), 3),
                    "classes": {names[c]: [l for l, v in label.items() if v == c] for c in sorted(set(label.values()))}}
