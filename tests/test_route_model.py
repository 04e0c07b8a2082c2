"""`edgelm route` end to end on a tiny teacher with the real tokenizer and the real data: a
multi-target body, experts and a router; routed bundles that the device runtime runs sparsely and
that the export parity check verifies; and the bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import assert_user_error, run_edgelm as edgelm, tree_snapshot

from edgelm.errors import EdgelmError

DISTILL = ["--phase", "general", "--steps", "4", "--layers", "2", "--batch-size", "8"]
ROUTE = ["--steps", "12", "--router-steps", "40", "--batch-size", "8"]
TEXTS = ["Habari ya asubuhi, rafiki yangu.", "नमस्ते, आप कैसे हैं?", "Good morning, my friend.",
         "Watoto wanacheza mpira uwanjani.", "मौसम आज बहुत अच्छा है।", "The train leaves at noon."]


@pytest.fixture(scope="module")
def body(tiny_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("route") / "body"
    edgelm("distill", "--teacher", str(tiny_teacher), "--out", str(out), "--target", "swh_Latn,hin_Deva", *DISTILL)
    return out


@pytest.fixture(scope="module")
def routed(body, tmp_path_factory):
    out = tmp_path_factory.mktemp("routed") / "scar"
    edgelm("route", "train", "--student", str(body), "--domains", "swh_Latn,hin_Deva", "--out", str(out), *ROUTE,
           "--general-languages", "fra_Latn")
    return out


def test_a_multi_target_body_and_its_routed_model(body, routed):
    run = json.loads((body / "run.json").read_text())
    assert run["provenance"]["languages"] == ["eng_Latn", "swh_Latn", "hin_Deva"]
    assert run["corpora"]["parallel_pairs"] == {"swh_Latn": 800, "hin_Deva": 800}  # SIB-200 train + dev rows
    meta = json.loads((routed / "routed.json").read_text())
    assert meta["experts"] == ["general", "swh_Latn", "hin_Deva"] and meta["general"] == 0
    assert meta["body_layers"] == 1 and meta["expert_layers"] == 1
    assert sorted(p.name for p in (routed / "experts").iterdir()) == [
        "general.safetensors", "hin_Deva.safetensors", "swh_Latn.safetensors"]
    assert meta["training"]["experts"]["swh_Latn"]["steps"] == 12
    from safetensors.torch import load_file

    general, swh = (load_file(routed / "experts" / f"{n}.safetensors") for n in ("general", "swh_Latn"))
    assert general.keys() == swh.keys() and any(not torch.equal(general[k], swh[k]) for k in general)
    router = meta["training"]["router"]
    assert 0 <= router["heldout_accuracy"] <= 1
    # the router learns "general" from the source language and the router-only French text
    assert router["classes"] == {"general": ["eng_Latn", "fra_Latn"], "swh_Latn": ["swh_Latn"], "hin_Deva": ["hin_Deva"]}
    assert router["heldout_sentences"] == 4 * 80
    assert not any(p.name.startswith(".") for p in routed.parent.iterdir())  # no work folders left behind


def test_the_general_expert_is_the_student_and_only_chosen_experts_run(body, routed):
    from edgelm.encoder import Encoder
    from edgelm.routing.model import RoutedModel

    student = Encoder.load(body / "general")
    model = RoutedModel.load(routed)
    batch = student.tokenize(TEXTS)
    with torch.no_grad():
        want = student.pool(student.model(**batch).last_hidden_state, batch["attention_mask"])
    got, chosen = model.forward(batch["input_ids"], batch["attention_mask"], "general")
    assert chosen[:, 0].all() and chosen.sum() == len(TEXTS)
    assert torch.allclose(got, want, atol=1e-5)  # body + general expert = the student, exactly

    calls = []
    for i, expert in enumerate(model.experts):
        expert.register_forward_hook(lambda mod, args, out, i=i: calls.append((i, args[0].shape[0])))
    learned, chosen = model.forward(batch["input_ids"], batch["attention_mask"], "learned", tau=0.5, k_max=1)
    assert chosen.sum(1).eq(1).all()
    ran = {i: n for i, n in calls}
    assert ran == {e: int(chosen[:, e].sum()) for e in range(3) if chosen[:, e].any()}  # rows of the chosen only
    calls.clear()
    dense, chosen = model.forward(batch["input_ids"], batch["attention_mask"], "dense")
    assert chosen.all() and len(calls) == 3
    with torch.no_grad():
        hidden = model.body(**batch).last_hidden_state
        weights = model.router(hidden, batch["attention_mask"])["weights"]
        each = torch.stack([model.expert_vectors(e, hidden, batch["attention_mask"]) for e in range(3)], 1)
    mixed = torch.nn.functional.normalize((weights[:, :, None] * each).sum(1), dim=-1)
    assert torch.allclose(dense, mixed, atol=1e-5)


def test_load_opens_routed_models_and_their_bundles(body, routed, routed_bundles):
    import edgelm
    from edgelm.checkpoint import encode_texts
    from edgelm.protocols import Classifier, Embedder
    from edgelm.routing.model import RoutedModel

    assert edgelm.describe(routed)["kind"] == "routed" and edgelm.describe(body / "general")["kind"] == "student"
    learned, dense = edgelm.load(routed), edgelm.load(f"{routed}@dense")
    assert isinstance(learned, Embedder) and not isinstance(learned, Classifier)
    assert (learned.routing, dense.routing) == ("learned", "dense")
    bundle = edgelm.load(f"{routed_bundles['none']['path']}@swh_Latn")
    assert isinstance(bundle, Embedder) and bundle.backend.routing == "swh_Latn"
    assert edgelm.describe(routed_bundles["none"]["path"])["kind"] == "bundle"
    one = edgelm.load(f"{routed}@swh_Latn")
    assert np.allclose(bundle.embed(TEXTS), one.embed(TEXTS), atol=1e-5)  # the same expert, torch and runtime
    with pytest.raises(EdgelmError, match="not a routed model"):
        edgelm.load(f"{body / 'general'}@dense")
    # route_texts truncates where it is told to (it used to cut at 512, whatever the body took)
    model = RoutedModel.load(routed)
    assert model.max_length == model.body.config.max_position_embeddings
    long_text = " ".join(TEXTS * 4)
    cut = model.route_texts([long_text], max_length=12)["weights"]
    batch = encode_texts(model.tokenizer, [long_text], model.recipe.prefix, 12)
    with torch.no_grad():
        want = model.choose(model.body(**batch).last_hidden_state, batch["attention_mask"])["weights"]
    assert torch.allclose(cut, want) and not torch.allclose(cut, model.route_texts([long_text])["weights"])


def test_eval_scores_every_routing(cli, routed):
    spec = str(routed)
    result = cli("eval", f"{spec}@oracle", spec, f"{spec}@dense", f"{spec}@swh_Latn", "--domains", "languages",
                 "--languages", "swh_Latn,hin_Deva", "--json")
    assert result.code == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["domains"] == ["swh_Latn", "hin_Deva"] and len(m["scores"]) == 4
    assert all(0 <= x <= 1 for row in m["scores"].values() for x in row)
    report = cli("eval", f"{spec}@oracle", "--task", "sib200", "--languages", "hin_Deva", "--json")
    routing = json.loads(report.stdout)["model"]["routing"]
    # oracle: the probe's English text goes to the general expert, Hindi test text to the Hindi expert
    assert routing["mean_experts"] == 1.0
    assert routing["sentences_per_expert"]["hin_Deva"] == 204 and routing["sentences_per_expert"]["swh_Latn"] == 0
    assert_user_error(cli("eval", f"{spec}@yor_Latn", "--task", "sib200", "--languages", "hin_Deva"), "unknown routing")


@pytest.fixture(scope="module")
def routed_bundles(routed, data_dir, tmp_path_factory):
    from edgelm.exporters.bundle import export_bundle

    root = tmp_path_factory.mktemp("routed-bundles")
    made = {q: export_bundle(str(routed), "onnx", q, root / q, data=data_dir) for q in ("none", "int8")}
    made["tflite-none"] = export_bundle(str(routed), "tflite", "none", root / "tflite-none", data=data_dir,
                                        buckets=(16, 64))
    return made


@pytest.mark.parametrize("key,min_cos", [("none", 0.99999), ("int8", 0.98), ("tflite-none", 0.99999)])
def test_routed_bundles_pass_parity_without_torch(routed_bundles, routed, key, min_cos):
    from edgelm.routing.model import RoutedModel
    from edgelm.runtime import Model

    manifest = routed_bundles[key]
    check = manifest["device_check"]
    assert check["torch_imported"] is False and check["min_cosine"] >= min_cos
    assert check["routing_agreement"] >= (1.0 if key != "int8" else 0.9)
    files = set(manifest["files"])
    if key != "tflite-none":
        assert {"body.onnx", "expert-general.onnx", "expert-swh_Latn.onnx", "expert-hin_Deva.onnx"} <= files
    assert "router.safetensors" in files
    model = Model.load(manifest["path"])
    ref = RoutedModel.load(routed)
    batch = ref.tokenizer([ref.recipe.prefix + t for t in TEXTS], padding=True, return_tensors="pt")
    want, chosen = ref.forward(batch["input_ids"], batch["attention_mask"])
    got = model.embed(TEXTS)
    assert (got * want.numpy()).sum(1).min() >= min_cos
    if key != "int8":
        assert (model.backend.last_chosen == chosen.numpy()).all()


def test_the_device_runs_only_the_experts_it_chose(routed_bundles):
    from edgelm.runtime import Model

    path = routed_bundles["none"]["path"]
    runs = {}
    for routing in ("dense", "learned", "hin_Deva"):
        model = Model.load(path, routing=routing)
        backend = model.backend
        seen = []
        for e, run in enumerate(backend.experts):
            backend.experts[e] = lambda h, m, run=run, e=e: seen.append((e, h.shape[0])) or run(h, m)
        vectors = model.embed(TEXTS)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
        runs[routing] = (seen, backend.last_chosen.copy(), backend.mean_experts)
    assert sorted(e for e, _ in runs["dense"][0]) == [0, 1, 2] and runs["dense"][2] == 3
    assert runs["hin_Deva"][0] == [(2, len(TEXTS))] and runs["hin_Deva"][2] == 1
    seen, chosen, mean = runs["learned"]
    assert dict(seen) == {e: int(chosen[:, e].sum()) for e in range(3) if chosen[:, e].any()}
    assert mean == chosen.sum(1).mean() <= 2  # k_max 2 routed experts, no general expert forced


def test_a_routing_the_device_disagrees_with_is_refused(routed_bundles, tmp_path):
    from edgelm.runtime import Model
    from edgelm.runtime import ParityError

    copy = tmp_path / "bundle"
    shutil.copytree(routed_bundles["none"]["path"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["parity"]["chosen"] = [[not x for x in row] for row in manifest["parity"]["chosen"]]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ParityError, match="chose other experts"):
        Model.load(copy)


def test_route_show_and_run_from_the_command_line(cli, routed, routed_bundles):
    for target in (str(routed), routed_bundles["none"]["path"]):
        result = cli("route", "show", target, *TEXTS[:2], "--json")
        assert result.code == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["experts"] == ["general", "swh_Latn", "hin_Deva"] and len(shown["routes"]) == 2
        assert all(abs(sum(r["weights"].values()) - 1) < 1e-5 and r["chosen"] for r in shown["routes"])
        # tau 1 runs experts until their weights add up to 1: all of them (k_max 3), for this call only
        every = json.loads(cli("route", "show", target, *TEXTS[:2], "--tau", "1", "--k-max", "3", "--json").stdout)
        assert every["mean_experts"] == 3.0
        assert_user_error(cli("route", "show", target, TEXTS[0], "--k-max", "0"), "k_max must be")
        assert_user_error(cli("route", "show", target, TEXTS[0], "--tau", "0"), "tau must be")
    assert_user_error(cli("route", "show", str(routed / "body"), TEXTS[0]), "not a routed model")
    out = cli("run", routed_bundles["int8"]["path"], TEXTS[0], "--routing", "dense", "--json")
    assert out.code == 0, out.stderr
    assert len(json.loads(out.stdout)["embeddings"][0]) == 32
    assert_user_error(cli("run", routed_bundles["int8"]["path"], TEXTS[0], "--routing", "yor_Latn"), "unknown routing")


def test_bad_routing_inputs_get_one_line_and_change_nothing(cli, body, routed, tiny_teacher, tmp_path):
    out = tmp_path / "scar"
    base = ["route", "train", "--student", str(body), "--out", str(out), *ROUTE]
    assert_user_error(cli(*base, "--domains", "swh_Latn"), "at least two domains")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--tau", "0"), "tau must be in (0, 1]")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--tau", "1.5"), "tau must be in (0, 1]")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--k-max", "0"), "k_max must be")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--k-max", "4"), "k_max must be")
    assert_user_error(cli(*base, "--domains", "swh_Latn,amh_Ethi"), "not amh_Ethi")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--no-bundled"), "no training text")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--expert-layers", "2"), "at least one layer")
    assert_user_error(cli(*base, "--domains", "swh_Latn,hin_Deva", "--general-languages", "hin_Deva"),
                      "not a general language")
    assert_user_error(cli("route", "train", "--student", str(tmp_path), "--out", str(out), "--domains",
                          "swh_Latn,hin_Deva"), "not a finished `edgelm distill` run")
    assert not out.exists()
    snapshot = tree_snapshot(routed)
    assert_user_error(cli(*base[:4], "--out", str(routed), "--domains", "swh_Latn,hin_Deva"), "exists")
    assert tree_snapshot(routed) == snapshot
    assert_user_error(cli("export", str(routed), "--target", "onnx", "--quantize", "int8-static", "--out",
                          str(tmp_path / "b")), "routed models export")
    assert not (tmp_path / "b").exists()


def test_experts_from_another_body_are_refused(cli, routed, tiny_teacher, tmp_path):
    other = tmp_path / "other-body"
    edgelm("distill", "--teacher", str(tiny_teacher), "--out", str(other), "--target", "swh_Latn,hin_Deva", *DISTILL,
           "--seed", "1")
    other_routed = tmp_path / "other-scar"
    edgelm("route", "train", "--student", str(other), "--domains", "swh_Latn,hin_Deva", "--out", str(other_routed), *ROUTE)
    mixed = tmp_path / "mixed"
    shutil.copytree(routed, mixed)
    shutil.copy(other_routed / "experts" / "swh_Latn.safetensors", mixed / "experts" / "swh_Latn.safetensors")
    assert_user_error(cli("eval", str(mixed), "--task", "sib200", "--languages", "swh_Latn"),
                      "expert swh_Latn", "different body")
    assert_user_error(cli("export", str(mixed), "--target", "onnx", "--out", str(tmp_path / "b")), "different body")
    assert not (tmp_path / "b").exists()


def test_the_routed_runtime_imports_no_torch(routed_bundles):
    code = ("import sys\nfrom edgelm.runtime import Model\n"
            f"m = Model.load({routed_bundles['int8']['path']!r}, routing='dense')\n"
            "m.embed(['Habari'])\nassert 'torch' not in sys.modules, 'torch imported'\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_topics_as_domains_route_export_and_score(cli, body, data_dir, tmp_path):
    """An expert per SIB-200 topic (a slash in its name), trained on that topic's text in every language
    of the body; oracle routing by topic in `eval --domains topics`; the routed bundle passes parity."""
    from edgelm.exporters.bundle import export_bundle

    out = tmp_path / "topics"
    base = ["route", "train", "--student", str(body), "--out", str(out), *ROUTE]
    assert_user_error(cli(*base, "--domains", "topics:travel,cooking"), "'cooking' is not a SIB-200 topic")
    assert_user_error(cli(*base, "--domains", "topics", "--general"), "every text has a topic")
    assert_user_error(cli(*base, "--domains", "topics", "--corpus", "swh_Latn=x.txt"), "--corpus is for language")
    assert not out.exists()
    edgelm(*base, "--domains", "topics", "--k-max", "1")
    from edgelm.data.sib200 import load_sib200, sib200_labels

    topics = sib200_labels(data_dir)
    meta = json.loads((out / "routed.json").read_text())
    assert meta["grouping"] == "topics" and meta["general"] is None and meta["experts"] == topics
    files = sorted(p.name for p in (out / "experts").iterdir())
    assert len(files) == 7 and "science_technology.safetensors" in files
    # each topic expert saw its topic in all three languages of the body, and nothing else
    n = sum(r.label == "travel" for split in ("train", "dev") for r in load_sib200(data_dir, "swh_Latn", split))
    assert meta["corpora"]["travel"] == {"eng_Latn": n, "swh_Latn": n, "hin_Deva": n, "sources": ["sib200 train+dev"]}
    assert meta["training"]["router"]["classes"] == {t: [t] for t in topics}

    result = cli("eval", f"{out}@oracle", f"{out}@travel", "--domains", "topics", "--languages",
                 "eng_Latn,swh_Latn", "--json")
    assert result.code == 0, result.stderr
    m = json.loads(result.stdout)
    assert len(m["domains"]) == 7 and all(0 <= x <= 1 for row in m["scores"].values() for x in row)
    # the oracle runs a topic's own expert on that topic: on travel it is the travel specialist
    oracle, travel = m["scores"][f"{out}@oracle"], m["scores"][f"{out}@travel"]
    assert oracle[m["domains"].index("travel")] == travel[m["domains"].index("travel")]
    # ... and it cannot be used where the evaluation does not know each text's topic
    assert_user_error(cli("eval", f"{out}@oracle", "--task", "sib200", "--languages", "swh_Latn"),
                      "oracle routing over topics")

    bundle = export_bundle(str(out), "onnx", "none", tmp_path / "bundle", data=data_dir)
    assert "expert-science_technology.onnx" in bundle["files"]
    assert bundle["device_check"]["routing_agreement"] == 1.0 and bundle["device_check"]["min_cosine"] >= 0.99999
