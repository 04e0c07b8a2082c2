"""Students and the teacher open in sentence-transformers with edgelm's exact vectors; every folder a
user ships carries a model card, and `edgelm eval --card` puts measured scores on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

TEXTS = ["Habari ya asubuhi, rafiki yangu.", "The train leaves at noon.", "Serikali imetangaza bajeti mpya.",
         "Wanafunzi walisoma vitabu vingi shuleni jana jioni kabla ya mtihani wa mwisho wa mwaka."]


@pytest.fixture(scope="module")
def student(tiny_teacher, tmp_path_factory):
    import edgelm

    out = tmp_path_factory.mktemp("interop") / "run"
    edgelm.distill("swh_Latn", out=out, teacher=str(tiny_teacher), phase="general", steps=2, layers=2)
    return out / "general"


def _same_vectors(folder) -> float:
    from sentence_transformers import SentenceTransformer

    import edgelm

    ours = edgelm.load(folder).embed(TEXTS)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    return float(np.abs(ours - theirs).max())


def test_the_teacher_in_sentence_transformers_gives_edgelm_vectors(teacher_dir):
    assert _same_vectors(teacher_dir) < 1e-5  # prefix as default prompt, mean pooling, normalisation


def test_a_student_in_sentence_transformers_gives_edgelm_vectors(student):
    assert _same_vectors(student) < 1e-5
    prompts = json.loads((student / "config_sentence_transformers.json").read_text())
    assert prompts["default_prompt_name"] == "query" and prompts["prompts"]["query"] == "query: "


def test_a_student_carries_a_card_and_eval_card_records_scores(student, cli, data_dir):
    card = (student / "README.md").read_text()
    assert "language:\n- eng\n- swh" in card and "Not measured yet" in card
    assert "license:" not in card  # a teacher folder of unknown licence: the card does not guess one
    assert "SentenceTransformer(\"general\")" in card
    r = cli("eval", str(student), "--task", "tatoeba", "--languages", "swh_Latn", "--card", "--json")
    assert r.code == 0, r.stderr
    score = json.loads(r.stdout)["tatoeba"]["scores"][0]["accuracy"]
    card = (student / "README.md").read_text()
    assert f"| Tatoeba retrieval (both directions) | swh_Latn | accuracy | {score:.4f} |" in card
    assert json.loads((student / "scores.json").read_text())["rows"][0]["score"] == pytest.approx(score)


def test_a_bundle_card_carries_the_source_scores_and_eval_card_refuses_bundles(student, cli, data_dir, tmp_path):
    from edgelm.exporters.bundle import export_bundle
    from edgelm.interop import read_scores, write_scores
    from edgelm.runtime import Model

    recorded = read_scores(student) or {"rows": [{"task": "Tatoeba retrieval (both directions)", "language": "swh_Latn",
                                                  "metric": "accuracy", "score": 0.0123, "n": 390}]}
    write_scores(student, recorded)
    bundle = tmp_path / "b"
    export_bundle(str(student), "onnx", "int8", bundle, data=data_dir)
    card = (bundle / "README.md").read_text()
    assert "parity with the source" in card and "edgelm run b" in card
    assert f"| swh_Latn | accuracy | {recorded['rows'][0]['score']:.4f} |" in card and "on the source model" in card
    assert "manifest" in card and Model.load(bundle)  # the card is one of the hashed files, and they verify
    assert "README.md" in json.loads((bundle / "manifest.json").read_text())["files"]
    r = cli("eval", str(bundle), "--card")
    assert r.code == 2 and "hashed" in r.stderr and r.stderr.count("error:") == 1


def test_the_optimum_layout_opens_in_optimum_and_sentence_transformers_onnx(student, data_dir, tmp_path):
    from optimum.onnxruntime import ORTModelForFeatureExtraction
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    import edgelm

    want = edgelm.load(student).embed(TEXTS)
    for quantize, atol, min_cos in (("none", 1e-4, 0.9999), ("int8", None, 0.98)):
        folder = tmp_path / quantize
        written = edgelm.export(student, folder, quantize=quantize, layout="optimum", data=data_dir)
        assert written["parity"]["min_cosine"] >= min_cos
        ort_model = ORTModelForFeatureExtraction.from_pretrained(folder)  # finds onnx/model.onnx
        tok = AutoTokenizer.from_pretrained(folder)
        batch = tok(["query: " + t for t in TEXTS], padding=True, return_tensors="pt")
        hidden = ort_model(**batch).last_hidden_state.numpy()
        m = batch["attention_mask"].numpy()[..., None]
        pooled = (hidden * m).sum(1) / m.sum(1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        st = SentenceTransformer(str(folder), backend="onnx", device="cpu").encode(TEXTS)
        for got in (pooled, st):
            if atol is not None:
                assert np.abs(got - want).max() < atol, quantize
            assert (got * want).sum(1).min() >= min_cos, quantize


def test_the_optimum_layout_refuses_what_it_cannot_write(student, cli, tmp_path):
    for args, words in ((["--target", "tflite"], "ONNX layout"), (["--quantize", "int8-static"], "--quantize none or int8"),
                        (["--layout", "gguf"], "--layout must be")):
        r = cli("export", str(student), "--out", str(tmp_path / "x"), "--layout", "optimum", *args)
        assert r.code == 2 and words in r.stderr and r.stderr.count("error:") == 1, r.stderr
        assert not (tmp_path / "x").exists()
