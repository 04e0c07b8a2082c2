"""SCAR routing kernels: threshold, cap and general expert by hand; torch and numpy agree; the
load-balancing term; bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgelm.kernels.routing import (RoutingError, expert_weights_np, expert_weights_torch, load_balance_loss,
                                    masked_mean_np, masked_mean_torch, select_experts_np, select_experts_torch)

W = np.array([[0.70, 0.20, 0.06, 0.04],
              [0.30, 0.28, 0.22, 0.20],
              [0.05, 0.05, 0.10, 0.80]], dtype=np.float32)


def test_threshold_and_cap_by_hand():
    mask, mixed = select_experts_np(W, tau=0.85, k_max=4)
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True], [False, False, True, True]]
    assert np.allclose(mixed[0], [0.7 / 0.9, 0.2 / 0.9, 0, 0]) and np.allclose(mixed.sum(1), 1)
    mask, _ = select_experts_np(W, tau=0.85, k_max=2)  # the cap wins over the threshold
    assert mask.sum(1).tolist() == [2, 2, 2]
    mask, _ = select_experts_np(W, tau=1.0, k_max=4)  # tau 1: everything, a dense mixture
    assert mask.all()
    mask, _ = select_experts_np(W, tau=0.5, k_max=4)
    assert mask.sum(1).tolist() == [1, 2, 1]


def test_general_expert_is_always_in_and_counts_first():
    mask, mixed = select_experts_np(W, tau=0.85, k_max=1, general=0)
    assert mask[:, 0].all()
    assert mask.tolist()[0] == [True, True, False, False]  # 0.7 + 0.2 reaches 0.85
    assert mask.tolist()[2] == [True, False, False, True]  # one routed expert at most (k_max=1)
    mask, _ = select_experts_np(W, tau=0.6, k_max=3, general=0)
    assert mask.tolist()[0] == [True, False, False, False]  # the general expert alone reaches tau
    assert np.allclose(mixed.sum(1), 1)


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    tokens, mask = rng.normal(size=(64, 12, 5)).astype(np.float32), (rng.random((64, 12)) > 0.3).astype(np.int64)
    mask[:, 0] = 1
    pooled_np = masked_mean_np(tokens, mask)
    pooled_t = masked_mean_torch(torch.from_numpy(tokens), torch.from_numpy(mask))
    assert np.allclose(pooled_np, pooled_t.numpy(), atol=1e-6)
    w_np, w_t = expert_weights_np(pooled_np, 0.5), expert_weights_torch(pooled_t, 0.5)
    assert np.allclose(w_np, w_t.numpy(), atol=1e-6)
    for tau, k_max, general in [(0.5, 2, None), (0.9, 5, None), (0.7, 3, 4), (1.0, 4, 1), (0.3, 1, None)]:
        m_np, x_np = select_experts_np(w_np, tau, k_max, general)
        m_t, x_t = select_experts_torch(w_t, tau, k_max, general)
        assert (m_np == m_t.numpy()).all(), (tau, k_max, general)
        assert np.allclose(x_np, x_t.numpy(), atol=1e-6)
        routed = m_np.sum(1) - (1 if general is not None else 0)
        assert routed.max() <= k_max and m_np.any(1).all()


def test_mixing_weights_keep_their_gradient():
    scores = torch.randn(4, 3, requires_grad=True)
    _, mixed = select_experts_torch(expert_weights_torch(scores), 0.8, 2)
    (mixed * torch.arange(3.0)).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_load_balancing_term():
    even = torch.full((8, 4), 0.25)
    assert load_balance_loss(even, torch.ones(8, 4, dtype=torch.bool)).item() == pytest.approx(1.0)
    collapsed = torch.tensor([[1.0, 0, 0, 0]] * 8)
    m = torch.zeros(8, 4, dtype=torch.bool)
    m[:, 0] = True
    assert load_balance_loss(collapsed, m).item() == pytest.approx(4.0)
    skewed = torch.tensor([[0.7, 0.1, 0.1, 0.1]] * 8, requires_grad=True)
    loss = load_balance_loss(skewed, m)
    loss.backward()
    assert 1.0 < loss.item() < 4.0 and skewed.grad[0, 0] > 0  # pushes weight off the overused expert


@pytest.mark.parametrize("kwargs,message", [
    ({"tau": 0.0, "k_max": 2}, "tau must be in"), ({"tau": 1.2, "k_max": 2}, "tau must be in"),
    ({"tau": 0.5, "k_max": 0}, "k_max must be"), ({"tau": 0.5, "k_max": 5}, "k_max must be"),
    ({"tau": 0.5, "k_max": 2, "general": 7}, "general expert 7"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(RoutingError, match=message):
        select_experts_np(W, **kwargs)
    with pytest.raises(RoutingError, match=message):
        select_experts_torch(torch.from_numpy(W), **kwargs)
    with pytest.raises(RoutingError, match="at least two experts"):
        select_experts_np(W[:, :1], 0.5, 1)
