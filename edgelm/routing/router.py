"""SCAR's router: token hidden states cross-attend to learned domain prototypes.

Queries are the body's token states (projected), keys are one learned prototype per expert; the
token × expert scores are pooled over the real tokens into one score per expert, turned into
weights (softmax with a temperature), and `kernels.routing` picks the experts to run. Trained with
cross-entropy against the true domain plus the load-balancing term, so the router both identifies
the domain and does not collapse onto one expert.

`kernels.routing.RouterWeights` is the router as numpy arrays, and `kernels.routing.route_numpy`
computes on a device exactly what `ScarRouter.forward` computes in training (tested to agree).
"""

from __future__ import annotations

import torch

from edgelm.kernels.pooling import masked_mean_torch
from edgelm.kernels.routing import (RouterWeights, expert_weights_torch, load_balance_loss,  # noqa: F401
                                    route_numpy, select_experts_torch)


class ScarRouter(torch.nn.Module):
    """(hidden states, mask) -> per-expert weights, chosen experts and mixing weights."""

    def __init__(self, hidden: int, n_experts: int, key_dim: int = 64, temperature: float = 1.0):
        super().__init__()
        self.query = torch.nn.Linear(hidden, key_dim)
        self.prototypes = torch.nn.Parameter(torch.randn(n_experts, key_dim) / key_dim**0.5)
        self.temperature, self.key_dim = temperature, key_dim

    def scores(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled cross-attention scores, one per expert: (batch, experts)."""
        q = self.query(hidden)  # (batch, tokens, key_dim)
        token_scores = q @ self.prototypes.T / self.key_dim**0.5  # (batch, tokens, experts)
        return masked_mean_torch(token_scores, mask)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor, tau: float = 0.9, k_max: int | None = None,
                general: int | None = None) -> dict[str, torch.Tensor]:
        weights = expert_weights_torch(self.scores(hidden, mask), self.temperature)
        chosen, mixing = select_experts_torch(weights, tau, k_max or weights.shape[1], general)
        return {"weights": weights, "chosen": chosen, "mixing": mixing}

    def loss(self, hidden: torch.Tensor, mask: torch.Tensor, domain: torch.Tensor, balance: float = 0.01,
             tau: float = 0.9) -> torch.Tensor:
        """Cross-entropy to the true domain + `balance` × load-balancing term."""
        scores = self.scores(hidden, mask) / self.temperature
        weights = scores.softmax(-1)
        chosen, _ = select_experts_torch(weights, tau, weights.shape[1])
        return torch.nn.functional.cross_entropy(scores, domain) + balance * load_balance_loss(weights, chosen)


def train_router(router: ScarRouter, hidden: torch.Tensor, mask: torch.Tensor, domain: torch.Tensor, *,
                 steps: int = 200, lr: float = 3e-3, batch: int = 32, balance: float = 0.01, tau: float = 0.9,
                 seed: int = 0) -> list[float]:
    """Fit the router on cached body states of domain-labelled text; returns the loss curve. `tau` is the
    threshold the router will run at: the balance term counts the experts that threshold selects."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(router.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, hidden.shape[0], (batch,), generator=g)
        loss = router.loss(hidden[idx], mask[idx], domain[idx], balance, tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
