"""SCAR's routing arithmetic, once for training (torch) and once for the device (numpy).

The router scores every token against learned domain prototypes; these functions turn those
scores into per-input expert weights and pick the experts to run. Training and the device must
pick the same experts for the same scores, so each function exists twice with one contract and the
two are tested to agree.

- `masked_mean` (from `kernels.pooling`): mean over the real tokens — token scores to one row per input.
- `expert_weights`: softmax over experts of the pooled scores (temperature-scaled).
- `select_experts`: the smallest set of experts, heaviest first, whose weight reaches τ, capped at
  `k_max` routed experts; a `general` expert, if given, is always in the set (its weight counts
  toward τ first, so a confident general expert alone runs) and not counted in `k_max`. Returns a
  0/1 mask and the weights renormalised over the chosen experts (zeros elsewhere), which is how the
  outputs of the experts that did run are mixed.
- `route_numpy`: the whole trained router (`routing.router.ScarRouter`) on numpy arrays, for the device.
- `mix`: Σ_e mixing_e · expert_e(x), running each expert on the rows that chose it only.
- `load_balance_loss` (torch only: training): the Switch-Transformer term E · Σ_e f_e · P_e, with f_e
  the share of inputs that use expert e and P_e its mean weight; 1 when use is even.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgelm.errors import EdgelmError
from edgelm.kernels.pooling import masked_mean_np, masked_mean_torch  # noqa: F401  (part of this contract)


class RoutingError(EdgelmError, ValueError):
    """Routing options that cannot work (τ, k_max, the general expert)."""


def check_options(n_experts: int, tau: float, k_max: int, general: int | None = None) -> None:
    """Refuse τ outside (0, 1], k_max outside [1, experts], a general expert that does not exist."""
    if n_experts < 2:
        raise RoutingError(f"routing needs at least two experts, not {n_experts}")
    if not (0 < tau <= 1):
        raise RoutingError(f"tau must be in (0, 1], not {tau}")
    if isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer)) or not (1 <= k_max <= n_experts):
        raise RoutingError(f"k_max must be an integer between 1 and the number of experts ({n_experts}), not {k_max}")
    if general is not None and not (0 <= general < n_experts):
        raise RoutingError(f"the general expert {general} is not one of the {n_experts} experts")


# --- numpy (device) ---------------------------------------------------------------------------

def expert_weights_np(pooled_scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = pooled_scores / temperature
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def select_experts_np(weights: np.ndarray, tau: float, k_max: int,
                      general: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(batch, experts) weights -> (mask, mixing weights), see the module docstring."""
    n, e = weights.shape
    check_options(e, tau, k_max, general)
    routed = weights.copy()
    if general is not None:  # the general expert is always on; route among the others
        routed[:, general] = -np.inf
    order = np.argsort(-routed, axis=1, kind="stable")
    sorted_w = np.take_along_axis(np.where(np.isinf(routed), 0.0, routed), order, axis=1)
    # keep expert at rank r while the weight before it is still short of tau
    start = weights[:, [general]] if general is not None else 0.0  # the general expert's weight counts first
    before = start + np.cumsum(sorted_w, axis=1) - sorted_w
    keep_sorted = (before < tau) & (np.arange(e) < k_max)
    if general is not None:
        keep_sorted &= np.arange(e) < e - 1  # the general expert sorts last (-inf): never "routed"
    mask = np.zeros_like(weights, dtype=bool)
    np.put_along_axis(mask, order, keep_sorted, axis=1)
    if general is not None:
        mask[:, general] = True
    mixed = np.where(mask, weights, 0.0)
    mixed = mixed / np.clip(mixed.sum(1, keepdims=True), 1e-12, None)
    return mask, mixed.astype(weights.dtype)


# --- torch (training) -------------------------------------------------------------------------

def expert_weights_torch(pooled_scores: Any, temperature: float = 1.0) -> Any:
    return (pooled_scores / temperature).softmax(-1)


def select_experts_torch(weights: Any, tau: float, k_max: int, general: int | None = None) -> tuple[Any, Any]:
    """Same contract as `select_experts_np`; the mixing weights keep their gradient."""
    import torch

    n, e = weights.shape
    check_options(e, tau, k_max, general)
    routed = weights.detach().clone()
    if general is not None:
        routed[:, general] = -torch.inf
    order = torch.argsort(-routed, dim=1, stable=True)
    sorted_w = torch.gather(torch.where(torch.isinf(routed), torch.zeros_like(routed), routed), 1, order)
    start = weights.detach()[:, general : general + 1] if general is not None else 0.0
    before = start + sorted_w.cumsum(1) - sorted_w
    rank = torch.arange(e, device=weights.device)
    keep_sorted = (before < tau) & (rank < k_max)
    if general is not None:
        keep_sorted &= rank < e - 1
    mask = torch.zeros_like(weights, dtype=torch.bool).scatter(1, order, keep_sorted)
    if general is not None:
        mask[:, general] = True
    mixed = torch.where(mask, weights, torch.zeros_like(weights))
    return mask, mixed / mixed.sum(1, keepdim=True).clamp(min=1e-12)


def load_balance_loss(weights: Any, mask: Any) -> Any:
    """E · Σ_e (share of inputs using e) · (mean weight of e): 1 when balanced, up to E when collapsed."""
    e = weights.shape[1]
    share = mask.float().mean(0)
    share = share / share.sum().clamp(min=1e-12)
    return e * (share * weights.mean(0)).sum()


# --- the router and the mixture, shared by training and the device --------------------------------

@dataclass
class RouterWeights:
    """The trained router as plain arrays, for a torch-free device."""

    query_w: np.ndarray  # (key_dim, hidden)
    query_b: np.ndarray  # (key_dim,)
    prototypes: np.ndarray  # (experts, key_dim)
    temperature: float

    @classmethod
    def from_torch(cls, router: Any) -> RouterWeights:
        """From a `routing.router.ScarRouter`."""
        return cls(router.query.weight.detach().numpy().copy(), router.query.bias.detach().numpy().copy(),
                   router.prototypes.detach().numpy().copy(), float(router.temperature))


def route_numpy(w: RouterWeights, hidden: np.ndarray, mask: np.ndarray, tau: float = 0.9, k_max: int | None = None,
                general: int | None = None) -> dict[str, np.ndarray]:
    """`ScarRouter.forward` in numpy: weights, chosen experts (bool) and mixing weights."""
    n_experts, key_dim = w.prototypes.shape
    check_options(n_experts, tau, k_max or n_experts, general)
    q = hidden @ w.query_w.T + w.query_b
    token_scores = q @ w.prototypes.T / key_dim**0.5
    weights = expert_weights_np(masked_mean_np(token_scores, mask), w.temperature)
    chosen, mixing = select_experts_np(weights, tau, k_max or n_experts, general)
    return {"weights": weights, "chosen": chosen, "mixing": mixing}


def mix(chosen: Any, mixing: Any, run_expert, normalize: bool) -> Any:
    """Σ_e mixing_e · run_expert(e, rows) over the experts each row chose; expert e sees its rows only.

    torch tensors or numpy arrays alike, so training and the device mix identically.
    """
    is_np = isinstance(chosen, np.ndarray)
    out = None
    for e in range(chosen.shape[1]):
        rows = np.flatnonzero(chosen[:, e]) if is_np else chosen[:, e].nonzero().flatten()
        if len(rows) == 0:
            continue
        vec = run_expert(e, rows)
        if out is None:
            out = np.zeros((chosen.shape[0], vec.shape[1]), vec.dtype) if is_np else vec.new_zeros(chosen.shape[0], vec.shape[1])
        out[rows] += mixing[rows, e][:, None] * vec
    if normalize:
        norm = np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12, None) if is_np else out.norm(dim=1, keepdim=True).clamp(min=1e-12)
        out = out / norm
    return out
