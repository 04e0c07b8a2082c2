"""edgelm.kernels.sparse_diff: the same deltas on torch and numpy, safe storage, body checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgelm.kernels.sparse_diff import SparseDiff, SparseDiffError


def _states(seed: int = 0):
    rng = np.random.default_rng(seed)
    base = {"a.weight": rng.standard_normal((6, 5)).astype(np.float32), "b.bias": rng.standard_normal(7).astype(np.float32)}
    tuned = {k: v.copy() for k, v in base.items()}
    tuned["a.weight"][1, 2] += 0.5
    tuned["a.weight"][4, 0] -= 0.25
    tuned["b.bias"][3] += 1.0
    return base, tuned


def test_between_finds_exactly_the_changed_entries():
    base, tuned = _states()
    diff = SparseDiff.between(base, tuned)
    assert diff.nnz == 3
    assert diff.indices["a.weight"].tolist() == [1 * 5 + 2, 4 * 5 + 0]
    assert np.allclose(diff.values["a.weight"], [0.5, -0.25]) and np.allclose(diff.values["b.bias"], [1.0])


def test_masks_limit_the_diff():
    base, tuned = _states()
    masks = {"a.weight": np.zeros((6, 5), bool), "b.bias": np.ones(7, bool)}
    diff = SparseDiff.between(base, tuned, masks)
    assert diff.nnz == 1 and list(diff.indices) == ["b.bias"]


def test_apply_and_remove_agree_on_numpy_and_torch():
    base, tuned = _states()
    diff = SparseDiff.between(base, tuned)
    np_state = {k: v.copy() for k, v in base.items()}
    pt_state = {k: torch.from_numpy(v.copy()) for k, v in base.items()}
    diff.apply(np_state)
    diff.apply(pt_state)
    for name in base:
        assert np.allclose(np_state[name], tuned[name], atol=1e-7)
        assert np.allclose(pt_state[name].numpy(), np_state[name], atol=1e-7)
    diff.remove(np_state)
    diff.remove(pt_state)
    for name in base:
        assert np.allclose(np_state[name], base[name], atol=1e-6)
        assert np.allclose(pt_state[name].numpy(), base[name], atol=1e-6)


def test_a_diff_refuses_another_body():
    base, tuned = _states()
    diff = SparseDiff.between(base, tuned)
    other, _ = _states(seed=1)
    with pytest.raises(SparseDiffError, match="different body"):
        diff.apply(other)
    with pytest.raises(SparseDiffError, match="shape"):
        diff.apply({"a.weight": np.zeros((5, 6), np.float32), "b.bias": np.zeros(7, np.float32)}, check_base=False)


def test_save_load_round_trip(tmp_path):
    base, tuned = _states()
    diff = SparseDiff.between(base, tuned)
    diff.meta = {"task": "sib200"}
    diff.save(tmp_path / "d.safetensors")
    back = SparseDiff.load(tmp_path / "d.safetensors")
    assert back.meta == {"task": "sib200"} and back.base_fingerprint == diff.base_fingerprint
    state = {k: v.copy() for k, v in base.items()}
    back.apply(state)
    assert all(np.allclose(state[k], tuned[k]) for k in base)
    (tmp_path / "x.safetensors").write_bytes(b"not a diff")
    with pytest.raises(Exception, match="(?i)header|invalid|safetensor|not an edgelm"):
        SparseDiff.load(tmp_path / "x.safetensors")
