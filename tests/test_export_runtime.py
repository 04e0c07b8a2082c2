"""Export to ONNX bundles and the torch-free device runtime: parity for every quantization, refusal
of a runtime that disagrees, tampering, bucket padding and truncation, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_user_error

from edgelm.errors import EdgelmError
from edgelm.runtime import Bundle, Model, ParityError


@pytest.fixture(scope="module")
def bundles(tiny_teacher, data_dir, tmp_path_factory):
    from edgelm.export.bundle import export_bundle

    root = tmp_path_factory.mktemp("bundles")
    return {q: Path(export_bundle(str(tiny_teacher), "onnx", q, root / q, data=data_dir)["path"])
            for q in ("none", "int8", "int8-static")}


@pytest.fixture(scope="module")
def tiny_classifier(tiny_teacher, data_dir, tmp_path_factory):
    from transformers import BertForSequenceClassification

    from edgelm.data import sib200_labels

    labels = sib200_labels(data_dir)
    folder = tmp_path_factory.mktemp("tiny-clf")
    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(
        tiny_teacher, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={l: i for i, l in enumerate(labels)})
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(tiny_teacher / name, folder / name)
    return folder


@pytest.mark.parametrize("quantize,min_cos", [("none", 0.99999), ("int8", 0.98), ("int8-static", 0.95)])
def test_embedding_bundles_match_the_source_model(bundles, tiny_teacher, data_dir, quantize, min_cos):
    from edgelm.data import load_sib200
    from edgelm.encoder import Encoder

    model = Model.load(bundles[quantize])
    texts = [r.text for r in load_sib200(data_dir, "swh_Latn", "test")[:12]]
    got = model.embed(texts)
    want = Encoder.load(tiny_teacher).embed(texts)
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= min_cos
    manifest = json.loads((bundles[quantize] / "manifest.json").read_text())
    assert manifest["export"]["quantize"] == quantize and set(manifest["files"]) == {
        "model.onnx", "tokenizer.json", "config.json"}
    if quantize != "none":  # the embedding table is quantized too: the file shrinks about 4x
        fp32 = (bundles["none"] / "model.onnx").stat().st_size
        assert (bundles[quantize] / "model.onnx").stat().st_size < fp32 / 3


def test_classifier_bundle_predicts_like_torch(tiny_classifier, data_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgelm.data import load_sib200
    from edgelm.export.bundle import export_bundle

    path = Path(export_bundle(str(tiny_classifier), "onnx", "none", tmp_path / "clf", data=data_dir)["path"])
    model = Model.load(path)
    texts = [r.text for r in load_sib200(data_dir, "eng_Latn", "test")[:16]]
    preds = model.predict(texts)
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    with torch.no_grad():
        logits = ref(**tok(["query: " + t for t in texts], padding=True, return_tensors="pt")).logits
    assert [p["label"] for p in preds] == [ref.config.id2label[int(i)] for i in logits.argmax(-1)]
    assert abs(sum(preds[0]["probabilities"].values()) - 1) < 1e-5


class _Zeros:
    """A runtime that returns zeros, as tflite-runtime 2.14 does on current int8 models."""

    name = "broken-runtime"

    def __call__(self, ids, mask):
        return np.zeros((ids.shape[0], 32), dtype=np.float32)


def test_a_runtime_that_disagrees_is_refused(bundles):
    from tokenizers import Tokenizer

    bundle = Bundle.open(bundles["int8"])
    model = Model(bundle, _Zeros(), Tokenizer.from_file(str(bundle.path / "tokenizer.json")))
    with pytest.raises(ParityError, match="min cosine"):
        model.check_parity()


def test_tampered_truncated_and_newer_bundles_are_refused(bundles, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundles["int8"], copy)
    onnx_file = copy / "model.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    with pytest.raises(EdgelmError, match="sha256"):
        Model.load(copy)
    onnx_file.write_bytes(bytes(data[:1000]))
    with pytest.raises(EdgelmError, match="truncated"):
        Model.load(copy)
    shutil.copy(bundles["int8"] / "model.onnx", onnx_file)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["bundle_format"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgelmError, match="upgrade edgelm"):
        Model.load(copy)


def test_bucket_padding_and_truncation(bundles, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundles["none"], copy)
    bundle = Bundle.open(copy)
    bundle.config["buckets"] = [16, 32]
    from tokenizers import Tokenizer

    model = Model(bundle, Model.load(bundles["none"]).backend, Tokenizer.from_file(str(copy / "tokenizer.json")))
    ids, mask = model.encode(["Habari"])
    assert ids.shape == (1, 16) and mask.sum() < 16 and ids[0, -1] == 1  # padded with <pad> to the bucket
    ids, _ = model.encode(["Habari " * 12])
    assert ids.shape[1] == 32
    long_text = "Habari ya asubuhi " * 40
    with pytest.warns(UserWarning, match="truncated"):
        ids, mask = model.encode([long_text])
    assert ids.shape == (1, 32) and ids[0, -1] == 2  # </s> kept at the end
    with pytest.raises(EdgelmError, match="largest bucket"):
        model.encode([long_text], strict=True)
    with pytest.raises(EdgelmError, match="empty"):
        model.encode(["  "])
    with pytest.raises(EdgelmError, match="no text"):
        model.encode([])


def test_the_runtime_never_imports_torch(bundles):
    code = ("import sys; from edgelm.runtime import Model; m = Model.load(sys.argv[1]); "
            "v = m.embed(['Habari ya asubuhi']); assert v.shape == (1, 32); "
            "print(sorted(k for k in ('torch', 'transformers') if k in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, str(bundles["int8"])], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_cli_export_and_run(cli, bundles, tiny_teacher, tmp_path):
    result = cli("run", str(bundles["int8"]), "Habari ya asubuhi", "Good morning", "--json")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["embeddings"]) == 2 and len(out["embeddings"][0]) == 32
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\n\xff\xfe broken\n")
    assert_user_error(cli("run", str(bundles["int8"]), "--file", str(bad)), "not valid UTF-8")
    assert_user_error(cli("run", str(bundles["int8"]), ""), "empty text")
    assert_user_error(cli("run", str(tmp_path)), "not an edgelm bundle")
    target = tmp_path / "bundle"
    assert_user_error(cli("export", str(tiny_teacher), "--target", "coreml", "--out", str(target)), "unknown target")
    assert_user_error(cli("export", str(tiny_teacher), "--quantize", "int4", "--out", str(target)), "int4")
    assert not target.exists()


def test_bench_json_schema(cli, bundles, tmp_path):
    out = tmp_path / "bench.json"
    result = cli("bench", str(bundles["none"]), str(bundles["int8"]), "--runs", "5", "--warmup", "1",
                 "--seq-len", "16,32", "--json", "--out", str(out))
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    assert {"cpu", "cores", "os", "python", "versions", "edgelm"} <= set(report["machine"])
    assert report["peak_rss_mb"] > 0 and len(report["records"]) == 4
    for rec in report["records"]:
        assert {"target", "runtime", "threads", "seq_len", "batch", "p50_ms", "p90_ms", "p99_ms",
                "throughput_per_s", "ratio_to_first", "file_mb", "load_s", "samples_ms"} <= set(rec)
        assert len(rec["samples_ms"]) == 5 and rec["p50_ms"] <= rec["p99_ms"]
    firsts = [r for r in report["records"] if r["target"] == str(bundles["none"])]
    assert all(abs(r["ratio_to_first"] - 1) < 1e-9 for r in firsts)
    assert_user_error(cli("bench", str(bundles["none"]), "--seq-len", "1000"), "between 3 and 512")
    assert_user_error(cli("bench", str(bundles["none"]), "--runtime", "tensorrt"), "unknown runtime")
