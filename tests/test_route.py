"""SCAR's router on the real teacher's hidden states: it learns to tell four languages (three
scripts) apart from SIB-200 training text, and its numpy twin chooses the same experts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgelm.routing.router import RouterWeights, ScarRouter, route_numpy, train_router

LANGS = ["eng_Latn", "swh_Latn", "hin_Deva", "amh_Ethi"]


@pytest.fixture(scope="module")
def states(teacher, data_dir):
    """Teacher token states (cut at 48 tokens) for SIB-200 train and dev text, with language labels."""
    from edgelm.data import load_sib200

    def encode(split: str, n: int):
        texts, labels = [], []
        for i, lang in enumerate(LANGS):
            rows = load_sib200(data_dir, lang, split)[:n]
            texts += [r.text for r in rows]
            labels += [i] * len(rows)
        teacher.max_length = 48
        batch = teacher.tokenize(texts)
        with torch.inference_mode():
            hidden = teacher.model(**batch).last_hidden_state
        return hidden.clone(), batch["attention_mask"].clone(), torch.tensor(labels)

    try:
        return encode("train", 60), encode("dev", 40)
    finally:
        teacher.max_length = 512


def test_router_learns_the_language_and_numpy_agrees(states):
    (h, m, y), (hd, md, yd) = states
    torch.manual_seed(0)
    router = ScarRouter(h.shape[-1], len(LANGS), key_dim=32)
    losses = train_router(router, h, m, y, steps=300, balance=0.01)
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) / 2
    with torch.no_grad():
        out = router(hd, md, tau=0.9, k_max=2)
    accuracy = float((out["weights"].argmax(1) == yd).float().mean())
    assert accuracy >= 0.9, accuracy  # held-out dev sentences: the router identifies the language
    used = out["chosen"].sum(1).float()
    assert used.max() <= 2 and used.mean() < 1.8  # sparse: measured 1.58 experts per sentence at tau 0.9
    dev = route_numpy(RouterWeights.from_torch(router), hd.numpy(), md.numpy(), tau=0.9, k_max=2)
    assert np.allclose(dev["weights"], out["weights"].numpy(), atol=1e-5)
    assert (dev["chosen"] == out["chosen"].numpy()).all()
    general = route_numpy(RouterWeights.from_torch(router), hd.numpy(), md.numpy(), tau=0.9, k_max=1, general=0)
    assert general["chosen"][:, 0].all() and np.allclose(general["mixing"].sum(1), 1)


def test_train_router_trains_at_the_threshold_it_is_given(states):
    """The balance term counts the experts τ selects, so the loss train_router minimises must be taken at
    the caller's τ (it used to be fixed at 0.9 whatever the router was trained for)."""
    (h, m, y), _ = states
    torch.manual_seed(0)
    start = ScarRouter(h.shape[-1], len(LANGS), key_dim=32).state_dict()
    first = {}
    for tau in (0.3, 0.9):
        router = ScarRouter(h.shape[-1], len(LANGS), key_dim=32)
        router.load_state_dict(start)
        idx = torch.randint(0, h.shape[0], (32,), generator=torch.Generator().manual_seed(7))  # train_router's batch
        with torch.no_grad():
            want = router.loss(h[idx], m[idx], y[idx], balance=1.0, tau=tau).item()
        first[tau] = train_router(router, h, m, y, steps=1, balance=1.0, tau=tau, seed=7)[0]
        assert first[tau] == pytest.approx(want, rel=1e-6)
    assert first[0.3] != pytest.approx(first[0.9], rel=1e-4)  # τ changes what is minimised
