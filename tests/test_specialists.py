"""`edgelm route build`: SCAR over whole specialists, each with its own trimmed vocabulary and tokenizer,
plus a general expert, on students distilled from a tiny teacher with the real tokenizer and real data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import assert_user_error, run_edgelm as edgelm, tree_snapshot

DISTILL = ["--phase", "general", "--steps", "4", "--layers", "2", "--batch-size", "8"]
SWH = ["Watoto wanacheza mpira uwanjani.", "Serikali imetangaza bajeti mpya ya elimu."]
HIN = ["मौसम आज बहुत अच्छा है।", "सरकार ने शिक्षा के लिए नया बजट घोषित किया।"]
ENG = ["The train leaves at noon.", "The government announced a new education budget."]


@pytest.fixture(scope="module")
def students(tiny_teacher, tmp_path_factory):
    root = tmp_path_factory.mktemp("specialists")
    for lang in ("swh_Latn", "hin_Deva"):
        edgelm("distill", "--teacher", str(tiny_teacher), "--out", str(root / lang), "--target", lang, *DISTILL)
    return {lang: root / lang / "general" for lang in ("swh_Latn", "hin_Deva")}


@pytest.fixture(scope="module")
def routed(students, tiny_teacher, tmp_path_factory, data_dir):
    from edgelm.data.sib200 import load_sib200

    out = tmp_path_factory.mktemp("routed") / "specialists"
    # more router text: a Swahili file holding one SIB-200 test sentence (which must not train the router),
    # and Hausa, a language no expert has (-> the general expert)
    swh = out.parent / "swh.txt"
    swh.write_text("\n".join([*SWH, load_sib200(data_dir, "swh_Latn", "test")[0].text, "Habari za asubuhi."]) + "\n")
    edgelm("route", "build", "--expert", f"swh={students['swh_Latn']}", "--expert", f"hin_Deva={students['hin_Deva']}",
           "--general", str(tiny_teacher), "--out", str(out), "--router-steps", "300", "--corpus", f"swh={swh}",
           "--corpus", f"hau_Latn={data_dir / 'corpus' / 'hau_Latn.txt.gz'}", "--corpus-lines", "300")
    return out


def test_the_folder_holds_whole_experts_with_their_own_vocabularies(routed, students, tiny_teacher):
    meta = json.loads((routed / "routed.json").read_text())
    assert meta["design"] == "specialists" and meta["experts"] == ["general", "swh_Latn", "hin_Deva"]
    vocab = {n: json.loads((routed / "experts" / n / "config.json").read_text())["vocab_size"] for n in ("swh_Latn", "hin_Deva")}
    assert vocab["swh_Latn"] != vocab["hin_Deva"] and max(vocab.values()) < 250_002  # each trimmed to its own pair
    for name in ("general", "swh_Latn", "hin_Deva"):
        assert (routed / "experts" / name / "tokenizer.json").is_file()
    test = meta["router"]["test"]  # SIB-200 test sentences, never trained on
    assert test["swh_Latn"]["right"] >= 0.95 and test["hin_Deva"]["right"] >= 0.95 and test["eng_Latn"]["right"] >= 0.95
    assert "jpn_Jpan" in meta["router"]["heldout"] and test["jpn_Jpan"]["right"] >= 0.9  # unseen -> general
    corpora = meta["router"]["corpora"]
    assert corpora["swh_Latn"]["sentences"] == 3 and corpora["swh_Latn"]["evaluation_sentences_removed"] == 1
    assert corpora["swh_Latn"]["expert"] == "swh_Latn"
    assert corpora["hau_Latn"]["sentences"] == 300 and corpora["hau_Latn"]["expert"] == "general"


def test_each_text_runs_only_its_specialist_with_its_own_tokenizer(routed, students, tiny_teacher):
    import edgelm

    model = edgelm.load(routed)
    alone = {n: edgelm.load(p) for n, p in {**students, "general": tiny_teacher}.items()}
    texts = SWH + HIN + ENG
    got = model.embed(texts)
    want = np.concatenate([alone["swh_Latn"].embed(SWH), alone["hin_Deva"].embed(HIN), alone["general"].embed(ENG)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    routing = model.describe()["routing"]
    assert routing["mean_experts"] == 1.0
    assert routing["sentences_per_expert"] == {"general": 2, "swh_Latn": 2, "hin_Deva": 2}
    # oracle routing follows the language the caller gives; one expert by name runs it for everything
    oracle = edgelm.load(f"{routed}@oracle").embed(HIN, language="hin_Deva")
    np.testing.assert_allclose(oracle, alone["hin_Deva"].embed(HIN), atol=1e-5)
    forced = edgelm.load(f"{routed}@swh_Latn").embed(HIN)
    np.testing.assert_allclose(forced, alone["swh_Latn"].embed(HIN), atol=1e-5)
    dense = edgelm.load(f"{routed}@dense")
    vec = dense.embed(SWH)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert dense.describe()["routing"]["mean_experts"] == 3.0


def test_route_show_and_eval_read_the_specialists(routed, cli, data_dir):
    r = cli("route", "show", str(routed), SWH[0], ENG[0], "--json")
    assert r.code == 0, r.stderr
    routes = json.loads(r.stdout)["routes"]
    assert [x["chosen"] for x in routes] == [["swh_Latn"], ["general"]]
    r = cli("eval", str(routed), "--task", "sib200", "--languages", "swh_Latn,hin_Deva", "--json")
    assert r.code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["model"]["design"] == "specialists" and rep["model"]["routing"]["mean_experts"] <= 1.2


@pytest.fixture(scope="module")
def teacher_routed(teacher_dir, tmp_path_factory):
    """Real-teacher specialists that keep all twelve layers and differ from the teacher only in their trimmed
    vocabularies (one step at a negligible learning rate), routed with the teacher as the general expert."""
    root = tmp_path_factory.mktemp("teacher-specialists")
    for lang in ("swh_Latn", "hin_Deva"):
        edgelm("distill", "--teacher", str(teacher_dir), "--out", str(root / lang), "--target", lang, "--phase", "general",
               "--steps", "1", "--layers", "12", "--lr", "1e-9", "--batch-size", "4")
    out = root / "routed"
    edgelm("route", "build", "--expert", f"swh_Latn={root / 'swh_Latn' / 'general'}",
           "--expert", f"hin_Deva={root / 'hin_Deva' / 'general'}", "--general", str(teacher_dir), "--out", str(out),
           "--router-steps", "300")
    return out


def _retrieval(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.argmax(a @ b.T, axis=1) == np.arange(len(a))).mean())


def test_pairs_split_across_experts_with_different_vocabularies_stay_in_the_teachers_space(teacher_routed, teacher,
                                                                                          data_dir):
    """A sentence and its English translation run on different experts (each with its own tokenizer and
    vocabulary): retrieval between them must keep the teacher's accuracy, i.e. one output space."""
    import edgelm
    from edgelm.data.sib200 import load_sib200

    vocab = {n: json.loads((teacher_routed / "experts" / n / "config.json").read_text())["vocab_size"]
             for n in ("general", "swh_Latn", "hin_Deva")}
    assert len(set(vocab.values())) == 3 and vocab["general"] == teacher.model.config.vocab_size
    eng = [r.text for r in load_sib200(data_dir, "eng_Latn", "test")[:40]]
    eng_alone = teacher.embed(eng)
    for lang in ("swh_Latn", "hin_Deva"):
        model = edgelm.load(teacher_routed)
        text = [r.text for r in load_sib200(data_dir, lang, "test")[:40]]
        routed = _retrieval(model.embed(text), model.embed(eng))
        assert model.describe()["routing"]["sentences_per_expert"] == {
            "general": 40, "swh_Latn": 40 * (lang == "swh_Latn"), "hin_Deva": 40 * (lang == "hin_Deva")}
        alone = _retrieval(teacher.embed(text), eng_alone)
        assert routed >= alone - 0.05 and routed > 0.8, (lang, routed, alone)


def _relabel_teacher(folder, dest):
    shutil.copytree(folder, dest)
    config = json.loads((dest / "config.json").read_text())
    config["edgelm"]["source"]["sha256"] = "0" * 64  # as if converted from other weights
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def test_bad_input_is_one_line_and_writes_nothing(students, tiny_teacher, cli, tmp_path):
    out = tmp_path / "out"
    swh, hin = str(students["swh_Latn"]), str(students["hin_Deva"])
    other = _relabel_teacher(students["hin_Deva"], tmp_path / "other-teacher")
    notok = tmp_path / "no-tokenizer"
    shutil.copytree(students["hin_Deva"], notok)
    (notok / "tokenizer.json").unlink()
    before = tree_snapshot(tmp_path)
    base = ["route", "build", "--general", str(tiny_teacher), "--out", str(out), "--router-steps", "5"]
    cases = [
        ([*base, "--expert", f"swh={swh}", "--expert", f"hin_Deva={other}"], "another teacher"),
        ([*base, "--expert", f"swh={swh}", "--expert", f"swh_Latn={hin}"], "two experts claim swh_Latn"),
        ([*base, "--expert", f"swh={swh}", "--expert", f"swh={hin}"], "two experts claim swh"),
        (["route", "build", "--expert", f"swh={swh}", "--out", str(out)], "needs a general expert"),
        ([*base, "--expert", f"hin_Deva={notok}"], "no tokenizer"),
        ([*base, "--expert", f"hin_Deva={swh}"], "distilled for eng_Latn, swh_Latn, not hin_Deva"),
        ([*base, "--expert", f"swh={swh}", "--tau", "1.5"], "tau"),
        ([*base, "--expert", f"swh={swh}", "--k-max", "3"], "k_max"),
        ([*base, "--expert", f"swh={swh}", "--heldout", "swh_Latn"], "held out"),
        ([*base, "--expert", swh], "LANGUAGE=FOLDER"),
        ([*base, "--expert", f"swh={swh}", "--corpus", f"ind_Latn={tmp_path}"], "held out"),
        ([*base, "--expert", f"swh={swh}", "--corpus", f"hau_Latn={tmp_path / 'missing.txt'}"], "missing.txt"),
        ([*base, "--expert", f"swh={swh}", "--corpus", "hau_Latn"], "LANG=PATH"),
        ([*base, "--expert", f"swh={swh}", "--corpus-lines", "0"], "--corpus-lines"),
    ]
    for args, words in cases:
        assert_user_error(cli(*args), words)
    assert tree_snapshot(tmp_path) == before and not out.exists()


@pytest.fixture(scope="module")
def bundle(routed, tmp_path_factory, data_dir):
    import edgelm

    out = tmp_path_factory.mktemp("specialists-bundle") / "b"
    written = edgelm.export(routed, out, target="onnx", quantize="int8", data=data_dir)
    assert written["device_check"]["torch_imported"] is False and written["device_check"]["routing_agreement"] == 1.0
    return out


def test_the_bundle_runs_only_the_chosen_experts_without_torch(bundle, routed):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {"config.json", "router.safetensors", "experts/swh_Latn/manifest.json"} <= set(manifest["files"])
    assert manifest["parity"]["export_check"]["routing_agreement"] == 1.0
    assert set(manifest["sizes"]["file_bytes_by_expert"]) == {"general", "swh_Latn", "hin_Deva"}
    code = ("import json, sys; from edgelm.runtime import Model; m = Model.load(sys.argv[1]); "
            "v = m.embed(json.loads(sys.argv[2])); print(json.dumps({'v': v.tolist(), "
            "'runs': m.describe()['routing']['sentences_per_expert'], 'torch': 'torch' in sys.modules}))")
    import subprocess
    import sys

    texts = SWH + HIN + ENG
    done = subprocess.run([sys.executable, "-c", code, str(bundle), json.dumps(texts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["torch"] is False and got["runs"] == {"general": 2, "swh_Latn": 2, "hin_Deva": 2}
    import edgelm

    want = edgelm.load(routed).embed(texts)
    assert (np.sum(np.array(got["v"]) * want, axis=1) > 0.98).all()


def test_a_tampered_expert_inside_the_bundle_is_refused(bundle, tmp_path, cli):
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    onnx = next((copy / "experts" / "hin_Deva").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-8] + b"\0" * 8)
    assert_user_error(cli("run", str(copy), "Habari"), "sha256")
    sub = copy / "experts" / "swh_Latn" / "manifest.json"
    sub.write_text(sub.read_text().replace('"bundle_format": 1', '"bundle_format":1'))
    assert_user_error(cli("run", str(copy), "Habari"), "experts/swh_Latn/manifest.json")


def test_bench_and_serve_take_the_specialists_bundle(bundle, routed):
    """`edgelm bench` times text through the router and the chosen experts; `edgelm serve` serves it."""
    import edgelm
    import httpx
    from test_serve import server

    result = edgelm.bench(str(bundle), f"{bundle}#dense", seq_lens=(16,), runs=5, warmup=1, memory=False)
    experts = {r["target"]: r["mean_experts"] for r in result["records"]}
    assert experts[f"{bundle}#dense"] == 3.0 and 1.0 <= experts[str(bundle)] <= 1.2
    assert all(r["p50_ms"] > 0 for r in result["records"])
    texts = SWH + HIN + ENG
    want = edgelm.load(routed).embed(texts)
    with server(bundle) as url:
        got = httpx.post(url + "/v1/embeddings", json={"input": texts, "encoding_format": "float"}, timeout=60).json()
        assert httpx.get(url + "/health").json()["backend"] == "specialists: onnxruntime"
    vectors = np.array([d["embedding"] for d in got["data"]])
    assert vectors.shape == want.shape and (np.sum(vectors * want, axis=1) > 0.98).all()
    assert got["usage"]["prompt_tokens"] > len(texts)
