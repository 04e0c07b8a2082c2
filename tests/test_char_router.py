"""The character-n-gram router front (whole specialists, each with its own tokenizer, are routed by it):
the same features in every process, numpy and torch agreeing, and real language identification on
SIB-200 with languages it never saw going to the general expert."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from edgelm.errors import EdgelmError
from edgelm.kernels.charngrams import NgramSpec, ngram_ids, route_texts_numpy

EXPERTS = ["general", "swh_Latn", "hin_Deva", "amh_Ethi"]
UNSEEN = ["jpn_Jpan", "vie_Latn"]


def test_features_are_the_same_in_every_process():
    texts = ["Habari ya asubuhi", "नमस्ते", "ሰላም ነው", "Ünïcödé  spaces\tand CASE"]
    spec = NgramSpec(buckets=1000)
    ids, mask = ngram_ids(texts, spec)
    code = ("import sys, json; from edgelm.kernels.charngrams import NgramSpec, ngram_ids; "
            "print(json.dumps(ngram_ids(json.loads(sys.argv[1]), NgramSpec(buckets=1000))[0].tolist()))")
    import json

    other = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == ids.tolist()  # crc32, not Python's per-process salted hash
    assert mask.sum(1).tolist() == [3 * (len(s) + 2) - 3 for s in ["habari ya asubuhi", "नमस्ते", "ሰላም ነው",
                                                                  "ünïcödé spaces and case"]]
    assert ids.min() >= 0 and ids.max() < 1000
    same, _ = ngram_ids(["HABARI   ya asubuhi"], spec)  # case and runs of spaces do not change a text's n-grams
    assert same[0].tolist() == ids[0, : mask[0].sum()].tolist()


def test_a_bad_ngram_spec_is_refused():
    for bad in ({"buckets": 1, "orders": [1], "max_chars": 10}, {"buckets": 10, "orders": [], "max_chars": 10},
                {"orders": [1]}, {"buckets": "x", "orders": [1], "max_chars": 1}):
        with pytest.raises(EdgelmError, match="n-gram"):
            NgramSpec.from_dict(bad)
    assert NgramSpec.from_dict(NgramSpec().as_dict()) == NgramSpec()


@pytest.fixture(scope="module")
def trained(data_dir):
    from edgelm.data.sib200 import load_sib200, sib200_languages
    from edgelm.routing.front import fit_char_router

    texts, labels = [], []
    for lang in sib200_languages(data_dir):
        if lang in UNSEEN:
            continue
        for row in load_sib200(data_dir, lang, "train"):
            texts.append(row.text)
            labels.append(EXPERTS.index(lang) if lang in EXPERTS else 0)
    torch.set_num_threads(1)
    router, losses = fit_char_router(texts, labels, len(EXPERTS), spec=NgramSpec(buckets=1 << 12), steps=300)
    return router, losses


def test_numpy_routing_on_the_device_equals_torch(trained):
    router, _ = trained
    texts = ["Watoto wanacheza mpira uwanjani.", "मौसम आज बहुत अच्छा है।", "The train leaves at noon.", "ኢትዮጵያ",
             "Le train part à midi.", "x"]
    ids, mask = router.features(texts)
    with torch.no_grad():
        want = router(ids, mask, tau=0.9, k_max=2)
    got = route_texts_numpy(router.weights(), texts, 0.9, 2)
    np.testing.assert_allclose(got["weights"], want["weights"].numpy(), atol=1e-5)
    assert (got["chosen"] == want["chosen"].numpy()).all()
    np.testing.assert_allclose(got["mixing"], want["mixing"].numpy(), atol=1e-5)


def test_the_router_names_each_language_and_sends_unseen_ones_to_the_general_expert(trained, data_dir):
    from edgelm.data.sib200 import load_sib200, sib200_languages

    router, losses = trained
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])
    w = router.weights()
    for lang in sib200_languages(data_dir):
        rows = load_sib200(data_dir, lang, "test")  # never trained on
        want = EXPERTS.index(lang) if lang in EXPERTS else 0
        right = float((w.route([r.text for r in rows], 0.9, 1)["weights"].argmax(1) == want).mean())
        assert right >= (0.9 if lang in UNSEEN else 0.95), (lang, right)
