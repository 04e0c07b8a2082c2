"""Export to ONNX and TFLite bundles and the torch-free device runtime: parity for every target and
quantization, refusal of a runtime that disagrees (a deliberate one, and tflite-runtime's real silent
zeros), tampering, bucket padding and truncation, and bad input."""

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
    from edgelm.exporters.bundle import export_bundle

    root = tmp_path_factory.mktemp("bundles")
    made = {q: Path(export_bundle(str(tiny_teacher), "onnx", q, root / q, data=data_dir)["path"])
            for q in ("none", "int8", "int8-static")}
    for q in ("none", "fp16", "int8"):  # the bucket tests use int8; one bucket (one signature to convert) elsewhere
        made[f"tflite-{q}"] = Path(export_bundle(str(tiny_teacher), "tflite", q, root / f"tflite-{q}", data=data_dir,
                                                 buckets=TFLITE_BUCKETS if q == "int8" else TFLITE_BUCKETS[-1:])["path"])
    return made


TFLITE_BUCKETS = (16, 64)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("key,min_cos,shrink", [
    ("none", 0.99999, 1), ("int8", 0.98, 3), ("int8-static", 0.95, 3),
    ("tflite-none", 0.99999, 1), ("tflite-fp16", 0.999, 1.8),
    # LiteRT keeps a float scale and an int64 zero point per embedding row: 12 bytes against the tiny
    # model's 32-byte rows (3% of a real 384-wide row), so the tiny file shrinks ~2.3x, not 4x.
    ("tflite-int8", 0.98, 2)])
def test_embedding_bundles_match_the_source_model(bundles, tiny_teacher, data_dir, key, min_cos, shrink):
    from edgelm.data import load_sib200
    from edgelm.encoder import Encoder

    model = Model.load(bundles[key])
    texts = [r.text for r in load_sib200(data_dir, "swh_Latn", "test")[:12]]
    got = model.embed(texts)
    want = Encoder.load(tiny_teacher).embed(texts)
    assert _cosines(got, want).min() >= min_cos
    manifest = json.loads((bundles[key] / "manifest.json").read_text())
    target, _, quantize = key.rpartition("-") if key.startswith("tflite") else ("onnx", "", key)
    model_file = f"model.{target}"
    assert manifest["export"]["quantize"] == quantize and set(manifest["files"]) == {
        model_file, "tokenizer.json", "config.json", "README.md"}  # README.md: the model card
    parts = manifest["sizes"]["weights_by_part"]
    assert parts["embeddings"] > parts["encoder"] > 0  # a 250k-row table under a 4-layer, 32-wide encoder
    # Quantization reaches the embedding table too: int8 files shrink about 4x, fp16 about 2x.
    fp32 = (bundles["none" if target == "onnx" else "tflite-none"] / model_file).stat().st_size
    assert (bundles[key] / model_file).stat().st_size < fp32 / shrink + 1


def test_tflite_buckets_pad_and_truncate_like_the_source_model(bundles, tiny_teacher):
    from edgelm.encoder import Encoder

    model = Model.load(bundles["tflite-int8"])
    assert model.backend.name == "litert" and model.backend.buckets == list(TFLITE_BUCKETS)
    short, medium = "Habari ya asubuhi", "Habari ya asubuhi, rafiki yangu mpendwa " * 4
    assert model.tokenize([short])[0].shape == (1, 16) and model.tokenize([medium])[0].shape == (1, 64)
    teacher = Encoder.load(tiny_teacher)
    got = model.embed([short, medium])  # one batch, two rows, run one at a time in the 64 bucket
    assert _cosines(got, teacher.embed([short, medium])).min() > 0.98
    long_text = "Habari ya asubuhi " * 40
    with pytest.warns(UserWarning, match="truncated"):
        got = model.embed([long_text])
    teacher.max_length = 64  # the source model, cut at the same length, agrees
    assert _cosines(got, teacher.embed([long_text])).min() > 0.98
    with pytest.raises(EdgelmError, match="largest bucket"):
        Model.load(bundles["tflite-int8"], strict=True).embed([long_text])


@pytest.mark.parametrize("target,quantize", [("onnx", "none"), ("tflite", "int8")])
def test_classifier_bundle_predicts_like_torch(tiny_classifier, data_dir, tmp_path, target, quantize):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgelm.data import load_sib200
    from edgelm.exporters.bundle import export_bundle

    path = Path(export_bundle(str(tiny_classifier), target, quantize, tmp_path / "clf", data=data_dir,
                              buckets=TFLITE_BUCKETS if target == "tflite" else None)["path"])
    model = Model.load(path)
    texts = [r.text for r in load_sib200(data_dir, "eng_Latn", "test")[:16]]
    preds = model.predict(texts)
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    ref = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    with torch.no_grad():
        logits = ref(**tok(["query: " + t for t in texts], padding=True, return_tensors="pt")).logits
    same = np.mean([p["label"] == ref.config.id2label[int(i)] for p, i in zip(preds, logits.argmax(-1))])
    assert same == 1.0 if quantize == "none" else same >= 0.8  # the export thresholds
    assert abs(sum(preds[0]["probabilities"].values()) - 1) < 1e-5
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["parity"]["export_check"]["label_agreement"] >= 0.8
    # What a bundle can do is its type: a classifier bundle classifies, and `edgelm eval` scores its head.
    import edgelm
    from edgelm.protocols import Classifier, Embedder

    loaded = edgelm.load(path)
    assert isinstance(loaded, Classifier) and not isinstance(loaded, Embedder)
    assert edgelm.describe(path)["kind"] == "bundle" and manifest["kind"] == "bundle"
    if quantize == "none":
        torch_report = edgelm.evaluate(tiny_classifier, tasks="sib200", languages="eng_Latn")
        bundle_report = edgelm.evaluate(path, tasks="sib200", languages="eng_Latn")
        assert bundle_report["sib200"]["probe"]["kind"] == torch_report["sib200"]["probe"]["kind"] == "model_head"
        assert bundle_report["sib200"]["scores"] == torch_report["sib200"]["scores"]
        with pytest.raises(EdgelmError, match="does not embed"):
            edgelm.evaluate(path, tasks="tatoeba", languages="swh_Latn")


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
    ids, mask = model.tokenize(["Habari"])
    assert ids.shape == (1, 16) and mask.sum() < 16 and ids[0, -1] == 1  # padded with <pad> to the bucket
    ids, _ = model.tokenize(["Habari " * 12])
    assert ids.shape[1] == 32
    long_text = "Habari ya asubuhi " * 40
    with pytest.warns(UserWarning, match="truncated"):
        ids, mask = model.tokenize([long_text])
    assert ids.shape == (1, 32) and ids[0, -1] == 2  # </s> kept at the end
    with pytest.raises(EdgelmError, match="largest bucket"):
        model.tokenize([long_text], strict=True)
    with pytest.raises(EdgelmError, match="empty"):
        model.tokenize(["  "])
    with pytest.raises(EdgelmError, match="no text"):
        model.tokenize([])


@pytest.mark.parametrize("key", ["int8", "tflite-int8"])
def test_the_runtime_never_imports_torch(bundles, key):
    code = ("import sys; from edgelm.runtime import Model; m = Model.load(sys.argv[1]); "
            "v = m.embed(['Habari ya asubuhi']); assert v.shape == (1, 32); "
            "print(sorted(k for k in ('torch', 'transformers', 'litert_torch') if k in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code, str(bundles[key])], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_edgelm_load_opens_a_bundle_where_torch_cannot_be_imported(bundles):
    """A device has no torch: `edgelm.load` / `edgelm.describe` on a bundle must not reach for it, and a
    bundle asked for another task's verb says which one it has."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "import edgelm\n"
            "m = edgelm.load(sys.argv[1]); print(edgelm.describe(sys.argv[1])['kind'], m.embed(['Habari']).shape)\n"
            "print(isinstance(m, edgelm.Embedder), isinstance(m, edgelm.Classifier))\n"
            "try:\n    m.predict(['Habari'])\nexcept AttributeError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code, str(bundles["int8"])], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["bundle (1, 32)", "True False",
                                       "this bundle is an embedding model: it has embed(), not predict()"]


@pytest.fixture(scope="module")
def legacy_venv(tmp_path_factory) -> Path:
    """A device-like environment: no torch, no transformers, tflite-runtime 2.14 with numpy<2."""
    venv = tmp_path_factory.mktemp("legacy") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "tflite-runtime==2.14.0", "numpy<2", "tokenizers"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv / "bin" / "python"


def test_tflite_runtime_silent_zeros_are_refused_without_torch(bundles, legacy_venv):
    """tflite-runtime 2.14 returns ~0 for current dynamic-int8 models: the parity replay refuses it,
    and it still runs the fp32 bundle, which it computes correctly. No torch in that environment."""
    code = ("import sys, json; from edgelm.runtime import Model, ParityError\n"
            "from edgelm.errors import EdgelmError\n"
            "for b in (sys.argv[3], sys.argv[1]):\n"
            "    try:\n        Model.load(b)\n    except EdgelmError as e:\n        print('missing:', e)\n"
            "try:\n    Model.load(sys.argv[1], backend='tflite-runtime'); print('accepted')\n"
            "except ParityError as e:\n    print('refused:', e)\n"
            "m = Model.load(sys.argv[2], backend='tflite-runtime')\n"
            "print(json.dumps(m.embed(['Habari ya asubuhi']).tolist()))\n"
            "import importlib.util; print(importlib.util.find_spec('torch') is None)\n")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([str(legacy_venv), "-c", code, str(bundles["tflite-int8"]), str(bundles["tflite-none"]),
                          str(bundles["int8"])],
                         capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    missing, lines = run.stdout.strip().splitlines()[:2], run.stdout.strip().splitlines()[2:]
    # No onnxruntime and no LiteRT there: each default backend names the extra to install.
    assert missing == ["missing: the onnxruntime backend is not installed: pip install 'edgelm[device]'",
                       "missing: the litert backend is not installed: pip install 'edgelm[device]'"], missing
    assert lines[0].startswith("refused:") and "min cosine" in lines[0], lines[0]
    assert lines[-1] == "True"  # torch is not even installed there
    want = Model.load(bundles["tflite-none"]).embed(["Habari ya asubuhi"])
    assert _cosines(np.array(json.loads(lines[1])), want).min() > 0.9999


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
    result = cli("bench", str(bundles["none"]), str(bundles["int8"]), "--compare", f"{bundles['tflite-int8']}@litert",
                 "--runs", "5", "--warmup", "1", "--seq-len", "16,32", "--json", "--out", str(out))
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    assert {"cpu", "cores", "os", "python", "versions", "edgelm"} <= set(report["machine"])
    # The int8 features the kernels dispatch on are named, read from this machine's /proc/cpuinfo.
    from edgelm.benchmarks.harness import INT8_FEATURES

    flags = next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                 if line.lower().startswith(("flags", "features")))
    assert report["machine"]["cpu_features"] == [f for f in INT8_FEATURES if f in flags]
    assert report["peak_rss_mb"] > 0 and len(report["records"]) == 6
    for rec in report["records"]:
        assert {"target", "runtime", "threads", "seq_len", "batch", "p50_ms", "p90_ms", "p99_ms",
                "throughput_per_s", "ratio_to_first", "file_mb", "load_s", "samples_ms", "peak_rss_mb",
                "pi4_estimate"} <= set(rec)
        assert len(rec["samples_ms"]) == 5 and rec["p50_ms"] <= rec["p99_ms"]
        assert 10 < rec["peak_rss_mb"] < report["peak_rss_mb"]  # each measured alone, in a fresh process
        est = rec["pi4_estimate"]
        assert est["is_estimate"] and est["estimate_ms"] == max(est["compute_ms"], est["memory_ms"]) > 0
    assert [r["runtime"] for r in report["records"]] == ["onnxruntime"] * 4 + ["litert"] * 2
    firsts = [r for r in report["records"] if r["target"] == str(bundles["none"])]
    assert all(abs(r["ratio_to_first"] - 1) < 1e-9 for r in firsts)
    by_len = {r["seq_len"]: r["pi4_estimate"]["gflop"] for r in firsts}
    assert by_len[32] > 2 * by_len[16] * 0.99  # FLOPs grow at least linearly with length
    assert_user_error(cli("bench", str(bundles["none"]), "--seq-len", "1000"), "between 3 and 512")
    assert_user_error(cli("bench", str(bundles["none"]), "--runtime", "tensorrt"), "unknown runtime")
    assert_user_error(cli("bench", f"{bundles['none']}@litert"), "litert does not run onnx bundles")


def test_export_bad_options_write_nothing(cli, tiny_teacher, tmp_path):
    target = tmp_path / "bundle"
    assert_user_error(cli("export", str(tiny_teacher), "--target", "tflite", "--quantize", "int8-static",
                          "--out", str(target)), "none, fp16, int8")
    assert_user_error(cli("export", str(tiny_teacher), "--buckets", "32", "--out", str(target)), "--target tflite")
    assert_user_error(cli("export", str(tiny_teacher), "--target", "tflite", "--buckets", "4,1024",
                          "--out", str(target)), "between 8 and 512")
    assert_user_error(cli("export", str(tiny_teacher), "--target", "tflite", "--buckets", "a,b",
                          "--out", str(target)), "comma-separated integers")
    assert not target.exists()


class _Untraceable(torch.nn.Module):
    """Data-dependent Python control flow: no exporter can turn this into one static graph."""

    def forward(self, input_ids, attention_mask):
        if int(input_ids.sum().item()) % 2:
            return input_ids.float().mean(1, keepdim=True)
        return attention_mask.float().sum(1, keepdim=True).numpy()


@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_a_model_that_cannot_be_traced_is_one_line(target, tmp_path):
    from edgelm.exporters.onnx import export_onnx
    from edgelm.exporters.tflite import export_tflite

    ids, mask = torch.ones((1, 16), dtype=torch.int64), torch.ones((1, 16), dtype=torch.int64)
    with pytest.raises(EdgelmError, match="cannot be (traced|converted)"):
        if target == "onnx":
            export_onnx(_Untraceable(), (ids, mask), tmp_path / "m.onnx")
        else:
            export_tflite(_Untraceable(), (16,), tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


def test_eval_scores_a_bundle_through_its_runtime(cli, bundles, tiny_teacher):
    """`edgelm eval BUNDLE` embeds with the device runtime: an fp32 bundle scores what its source
    model scores, an int8 one within a couple of sentences, and the report says which runtime ran."""
    args = ("--task", "sib200", "--task", "tatoeba", "--languages", "swh_Latn", "--json")
    torch_report = json.loads(cli("eval", str(tiny_teacher), *args).stdout)
    for key, tolerance in (("none", 0.01), ("int8", 0.03), ("tflite-int8", 0.05)):
        res = cli("eval", str(bundles[key]), *args)
        assert res.code == 0, res.stderr
        report = json.loads(res.stdout)
        assert report["model"]["bundle"]["backend"] == ("litert" if key.startswith("tflite") else "onnxruntime")
        for task in ("sib200", "tatoeba"):
            got, want = report[task]["scores"][0]["accuracy"], torch_report[task]["scores"][0]["accuracy"]
            assert abs(got - want) <= tolerance, (key, task, got, want)
    assert_user_error(cli("eval", str(bundles["none"]), "--prefix", "passage: "), "prefix is fixed at export")


@pytest.fixture(scope="module")
def student_tflite_int8(teacher_dir, data_dir, tmp_path_factory) -> Path:
    """A 1-layer eng+swh student of the real teacher (its width, its int8 kernels) as a TFLite int8 bundle.
    The tiny 32-wide teacher is too narrow for XNNPACK and the builtin kernels to round differently."""
    import edgelm
    from edgelm.exporters.bundle import export_bundle

    root = tmp_path_factory.mktemp("kernels")
    edgelm.distill("swh_Latn", out=root / "run", teacher=str(teacher_dir), phase="general", layers=1, steps=1,
                   batch_size=4)
    return Path(export_bundle(str(root / "run" / "general"), "tflite", "int8", root / "bundle", data=data_dir,
                              buckets=(32, 64))["path"])


def test_tflite_kernel_paths_and_the_parity_driven_fallback(student_tflite_int8, tmp_path):
    """Every LiteRT kernel path runs an int8 bundle; when the default kernels (XNNPACK) miss the parity
    record and the builtin ones meet it, loading falls back to the builtin kernels and says so."""
    src = student_tflite_int8
    for kernels in ("xnnpack", "builtin", "reference"):
        assert Model.load(src, backend=f"litert:{kernels}").describe()["bundle"]["kernels"] == kernels
    # A record the XNNPACK kernels miss: the builtin kernels' own outputs, with a threshold between
    # the two paths' agreement and 1 (what a drifting delegate on a device looks like to the replay).
    copy = tmp_path / "drift"
    shutil.copytree(src, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    texts = manifest["parity"]["texts"]
    builtin = Model.load(copy, backend="litert:builtin", check_parity=False)._run(texts, strict=False)
    xnnpack = Model.load(copy, backend="litert:xnnpack", check_parity=False)._run(texts, strict=False)
    agreement = float(_cosines(builtin, xnnpack).min())
    assert agreement < 0.999999, "the two kernel paths agree exactly here: nothing to fall back from"
    manifest["parity"]["outputs"] = builtin.tolist()
    manifest["parity"]["thresholds"]["min_cosine"] = (1 + agreement) / 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="running it on the builtin kernels"):
        model = Model.load(copy)
    described = model.describe()["bundle"]
    assert described["kernels"] == "builtin" and list(described["kernel_fallback"]) == ["xnnpack"]
    with pytest.raises(ParityError, match="min cosine"):
        Model.load(copy, backend="litert:xnnpack")  # a path asked for by name gets no fallback
    with pytest.raises(EdgelmError, match="kernel paths"):
        Model.load(copy, backend="onnxruntime:builtin")
