"""SCAR's router on a front every expert shares: character n-grams (`kernels.charngrams`).

The queries are learned embeddings of the text's hashed n-grams (instead of a shared body's token
states), the keys one learned prototype per expert; `routing.router.ScarRouter` does the rest (pooled
cross-attention scores, softmax, τ / k_max selection, load balancing). Trained with cross-entropy on
language-labelled sentences: each expert's language names that expert, every other language the
general expert. It runs before any expert, in microseconds, and the device runs the same arithmetic in
numpy (`kernels.charngrams.route_texts_numpy`, tested to agree).
"""

from __future__ import annotations

import numpy as np
import torch

from edgelm.kernels.charngrams import CharRouterWeights, NgramSpec, ngram_ids
from edgelm.kernels.routing import RouterWeights
from edgelm.progress import progress_bar
from edgelm.routing.router import ScarRouter


class CharRouter(torch.nn.Module):
    """(texts) -> per-expert weights, chosen experts and mixing weights, from character n-grams."""

    def __init__(self, spec: NgramSpec, n_experts: int, dim: int = 32, key_dim: int = 32, temperature: float = 1.0):
        super().__init__()
        self.spec = spec
        self.table = torch.nn.Embedding(spec.buckets, dim)
        torch.nn.init.normal_(self.table.weight, std=dim**-0.5)
        self.scar = ScarRouter(dim, n_experts, key_dim=key_dim, temperature=temperature)

    def features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = ngram_ids(texts, self.spec)
        return torch.from_numpy(ids), torch.from_numpy(mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, tau: float = 0.9, k_max: int | None = None,
                general: int | None = None) -> dict[str, torch.Tensor]:
        return self.scar(self.table(ids), mask, tau=tau, k_max=k_max, general=general)

    def loss(self, ids: torch.Tensor, mask: torch.Tensor, expert: torch.Tensor, balance: float, tau: float) -> torch.Tensor:
        return self.scar.loss(self.table(ids), mask, expert, balance, tau)

    def weights(self) -> CharRouterWeights:
        """The router as arrays, for the device (`kernels.charngrams`)."""
        return CharRouterWeights(self.spec, self.table.weight.detach().numpy().copy(), RouterWeights.from_torch(self.scar))

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, spec: NgramSpec, state: dict[str, torch.Tensor], temperature: float) -> CharRouter:
        n_experts, key_dim = state["scar.prototypes"].shape
        router = cls(spec, n_experts, dim=state["table.weight"].shape[1], key_dim=key_dim, temperature=temperature)
        router.load_state_dict(state)
        return router.eval()


def fit_char_router(texts: list[str], experts: list[int], n_experts: int, *, spec: NgramSpec | None = None,
                    dim: int = 32, key_dim: int = 32, steps: int = 1500, batch: int = 64, lr: float = 1e-2,
                    balance: float = 0.01, tau: float = 0.9, seed: int = 0) -> tuple[CharRouter, list[float]]:
    """Train a `CharRouter` to name `experts[i]` for `texts[i]`; returns it (eval mode) and its loss curve.
    Batches are drawn class-balanced (each expert's sentences equally often), so a general class made of
    many languages does not drown the experts' own."""
    spec = spec or NgramSpec()
    torch.manual_seed(seed)
    router = CharRouter(spec, n_experts, dim=dim, key_dim=key_dim)
    y = np.asarray(experts)
    by_class = [np.flatnonzero(y == c) for c in range(n_experts)]
    if any(len(idx) == 0 for idx in by_class):
        raise ValueError("every expert needs training sentences")
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(router.parameters(), lr=lr, weight_decay=0.0)
    losses: list[float] = []
    router.train()
    with progress_bar("router", steps, "step") as advance:
        for _ in range(steps):
            cls = rng.integers(0, n_experts, batch)
            idx = [int(by_class[c][rng.integers(0, len(by_class[c]))]) for c in cls]
            ids, mask = router.features([texts[i] for i in idx])
            loss = router.loss(ids, mask, torch.as_tensor(y[idx]), balance, tau)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            advance(1)
    return router.eval(), losses
