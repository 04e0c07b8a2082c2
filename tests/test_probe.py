"""The numpy probe (for devices without scikit-learn) reaches scikit-learn's probe, and `edgelm eval`
scores a bundle with neither torch nor scikit-learn importable."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgelm.evaluation.probe import NumpyLogisticRegression

BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "sklearn", "scipy", "transformers"):
            raise ImportError(f"{name} is not on this device")
sys.meta_path.insert(0, Block())
from edgelm.cli import main
main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def sib_embeddings(teacher_dir, data_dir):
    import edgelm
    from edgelm.data import load_sib200, sib200_labels

    teacher = edgelm.load(teacher_dir)
    index = {name: i for i, name in enumerate(sib200_labels(data_dir))}
    out = {}
    for lang, split, every in (("eng_Latn", "train", 2), ("swh_Latn", "test", 1)):
        rows = load_sib200(data_dir, lang, split)[::every]  # half the training split: 350 rows, all seven topics
        out[split] = (teacher.embed([r.text for r in rows]), np.array([index[r.label] for r in rows]))
    return out


@pytest.mark.parametrize("c", [1.0, 10.0])
def test_numpy_probe_reaches_sklearns_optimum(sib_embeddings, c):
    from sklearn.linear_model import LogisticRegression

    (x, y), (xt, yt) = sib_embeddings["train"], sib_embeddings["test"]
    ours = NumpyLogisticRegression(C=c).fit(x, y)
    theirs = LogisticRegression(C=c, max_iter=3000).fit(x, y)
    assert np.mean(ours.predict(xt) == theirs.predict(xt)) >= 0.98
    assert abs(np.mean(ours.predict(xt) == yt) - np.mean(theirs.predict(xt) == yt)) <= 0.01
    assert np.abs(ours.predict_proba(xt) - theirs.predict_proba(xt)).max() < 0.02


def test_eval_scores_a_bundle_without_torch_or_sklearn(tiny_teacher, data_dir, tmp_path, cli):
    from edgelm.exporters.bundle import export_bundle

    bundle = tmp_path / "b"
    export_bundle(str(tiny_teacher), "onnx", "int8", bundle, data=data_dir)
    args = ["eval", str(bundle), "--task", "sib200", "--languages", "swh_Latn,eng_Latn", "--json"]
    device = subprocess.run([sys.executable, "-c", BLOCK, *args], capture_output=True, text=True)
    assert device.returncode == 0, device.stderr[-2000:]
    on_device = json.loads(device.stdout)["sib200"]
    assert on_device["probe"]["kind"] == "logistic_regression (numpy L-BFGS)"
    here = json.loads(cli(*args).stdout)["sib200"]
    assert here["probe"]["kind"] == "logistic_regression"
    for a, b in zip(on_device["scores"], here["scores"]):
        assert a["language"] == b["language"] and abs(a["accuracy"] - b["accuracy"]) <= 0.02
