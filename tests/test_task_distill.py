"""Your task, your data: `edgelm distill --task PATH` for tagging (NER, POS) and sentence classification
(sentiment, in-language), then eval, export and run — on a tiny teacher with the real tokenizer and
slices of the real data sets; and the bad inputs, one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import assert_user_error, tree_snapshot

FAST = ["--steps", "4", "--layers", "2", "--batch-size", "8", "--teacher-epochs", "1", "--full-epochs", "1",
        "--sparse-epochs", "1"]


def _conll_slice(src: Path, dst: Path, n: int) -> None:
    sentences = src.read_text(encoding="utf-8").strip("\n").split("\n\n")[:n]
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def ner_task(data_dir, tmp_path_factory) -> Path:
    """A slice of the real NER task: English train/dev, Hausa and Swahili test, its labels.txt."""
    root = tmp_path_factory.mktemp("ner")
    for lang, split, n in (("eng_Latn", "train", 160), ("eng_Latn", "dev", 40), ("hau_Latn", "test", 60),
                           ("swh_Latn", "test", 40)):
        _conll_slice(data_dir / "ner" / lang / f"{split}.conll", root / lang / f"{split}.conll", n)
    shutil.copy(data_dir / "ner" / "labels.txt", root / "labels.txt")
    return root


@pytest.fixture(scope="module")
def ner_run(tiny_teacher, ner_task, data_dir, tmp_path_factory) -> Path:
    from edgelm.cli import main

    out = tmp_path_factory.mktemp("ner-run") / "run"
    try:
        main(["distill", "--teacher", str(tiny_teacher), "--task", str(ner_task), "--target", "hau_Latn",
              "--corpus", f"hau_Latn={data_dir / 'corpus' / 'hau_Latn.txt.gz'}", "--out", str(out), *FAST])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def test_a_tagger_distils_from_the_users_conll_data(ner_run, ner_task):
    import edgelm
    from edgelm.protocols import Classifier, Tagger

    run = json.loads((ner_run / "run.json").read_text())
    assert run["task_data"]["setting"] == "zero-shot" and run["task_data"]["trained_on"] == ["eng_Latn"]
    assert run["task_data"]["identity"]["kind"] == "tagging" and run["task_data"]["identity"]["scheme"] == "bio"
    assert sorted(run["task_data"]["identity"]["files"]) == ["eng_Latn/dev.conll", "eng_Latn/train.conll",
                                                            "hau_Latn/test.conll", "swh_Latn/test.conll"]
    assert run["task"]["dev_metric"] == "entity F1" and 0 <= run["task"]["dev_score"] <= 1
    tagger = edgelm.load(ner_run / "task")
    assert isinstance(tagger, Tagger) and not isinstance(tagger, Classifier)
    assert tagger.labels == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"] and tagger.scheme == "bio"
    words = ["Shehu", "Gusau", "ya", "ziyarci", "Kano", "."]
    (tagged,) = tagger.tag_words([words])
    assert [w["word"] for w in tagged] == words and all(w["tag"] in tagger.labels for w in tagged)
    text = "Shehu Gusau ya ziyarci Kano, ranar Litinin."
    (spans,) = tagger.tag([text])
    assert [text[w["start"]:w["end"]] for w in spans] == [w["word"] for w in spans]
    assert [w["word"] for w in spans][-4:] == [",", "ranar", "Litinin", "."]
    assert edgelm.describe(ner_run / "task")["kind"] == "task_model"


def _phase_two_again(cli, tiny_teacher, ner_run, ner_task, data_dir, out: Path, *extra: str):
    """Phase 2 once more on a copy of `ner_run`'s phase-1 student, with its task teacher."""
    out.mkdir()
    for name in ("run.json", "vocab.json", "general"):
        (shutil.copytree if (ner_run / name).is_dir() else shutil.copy)(ner_run / name, out / name)
    result = cli("distill", "--teacher", str(tiny_teacher), "--phase", "task", "--task", str(ner_task), "--target",
                 "hau_Latn", "--corpus", f"hau_Latn={data_dir / 'corpus' / 'hau_Latn.txt.gz'}", "--out", str(out),
                 *FAST, "--task-teacher", str(ner_run / "task_teacher"), *extra)
    assert result.code == 0, result.stderr
    return result


def test_the_teacher_cache_runs_the_task_teacher_once_per_training_row(cli, tiny_teacher, ner_run, ner_task, data_dir,
                                                                        tmp_path):
    """Phase 2 with --teacher-cache: the same tagger as without it (to the cache's float16), the teacher
    run once per training row instead of once per row and epoch."""
    from safetensors.torch import load_file

    out = tmp_path / "cached"
    result = _phase_two_again(cli, tiny_teacher, ner_run, ner_task, data_dir, out, "--teacher-cache")
    assert "teacher cache: 160 sentences" in result.stderr
    info = json.loads((out / "run.json").read_text())["task"]["teacher_cache"]
    assert info == {"sentences_cached": 160, "teacher_passes": 160, "reused": 160}  # 2 epochs of 160 rows
    plain, cached = load_file(ner_run / "task" / "model.safetensors"), load_file(out / "task" / "model.safetensors")
    assert plain.keys() == cached.keys()
    assert max(float((plain[k] - cached[k]).abs().max()) for k in plain) < 1e-3


def test_unlabelled_target_text_joins_phase_two_with_the_teachers_tags(cli, tiny_teacher, ner_run, ner_task, data_dir,
                                                                       tmp_path):
    """--task-target-share 0.5: as many batches of Hausa text (phase 1's corpus, no labels) as of English
    rows, the task teacher's per-word predictions their targets; the labelled rows are still read once
    an epoch, and the cache holds both."""
    out = tmp_path / "target"
    _phase_two_again(cli, tiny_teacher, ner_run, ner_task, data_dir, out, "--task-target-share", "0.5",
                     "--teacher-cache")
    run = json.loads((out / "run.json").read_text())
    assert run["identity"] == json.loads((ner_run / "run.json").read_text())["identity"]  # phase 1 untouched
    task = run["task"]
    assert task["target_text"] == {"languages": ["hau_Latn"], "rows": 160, "share": 0.5, "batches_per_epoch": 20}
    # 2 epochs of 20 labelled + 20 unlabelled batches of 8: the 160 + 160 rows, each read once an epoch
    assert task["teacher_cache"] == {"sentences_cached": 320, "teacher_passes": 320, "reused": 320}
    assert len(task["history"]) == 2 and 0 <= task["dev_score"] <= 1


def test_eval_scores_a_tagger_per_language_with_entity_f1(cli, ner_run, ner_task):
    result = cli("eval", str(ner_run / "task"), "--task", str(ner_task), "--languages", "hau_Latn,swh_Latn", "--json")
    assert result.code == 0, result.stderr
    scores = json.loads(result.stdout)[str(ner_task)]["scores"]
    assert [s["language"] for s in scores] == ["hau_Latn", "swh_Latn"] and [s["n"] for s in scores] == [60, 40]
    assert all(0 <= s["entity_f1"] <= 1 and set(s["per_type"]) <= {"PER", "ORG", "LOC"} for s in scores)
    table = cli("eval", str(ner_run / "task"), "--task", str(ner_task), "--languages", "hau_Latn")
    assert "entity F1" in table.stdout and "hau_Latn" in table.stdout
    matrix = cli("eval", str(ner_run / "task"), "--task", str(ner_task), "--domains", "languages", "--json")
    assert json.loads(matrix.stdout)["domains"] == ["hau_Latn", "swh_Latn"]  # languages with a test split


@pytest.mark.parametrize("target,quantize", [("onnx", "none"), ("tflite", "int8")])
def test_a_tagger_bundle_tags_like_torch_and_prints_entities(cli, ner_run, ner_task, data_dir, tmp_path, target,
                                                             quantize):
    import edgelm
    from edgelm.data.tasks import load_task
    from edgelm.protocols import Tagger

    bundle = tmp_path / "bundle"
    made = cli("export", str(ner_run / "task"), "--target", target, "--quantize", quantize, "--out", str(bundle),
               "--buckets", "32,64") if target == "tflite" else cli(
        "export", str(ner_run / "task"), "--target", target, "--quantize", quantize, "--out", str(bundle))
    assert made.code == 0, made.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["parity"]["export_check"]["label_agreement"] >= 0.8
    device = edgelm.load(bundle)
    assert isinstance(device, Tagger) and device.scheme == "bio"
    sentences = [list(s.words) for s in load_task(ner_task).split("test", ["hau_Latn"])[:20]]
    want = [[w["tag"] for w in s] for s in edgelm.load(ner_run / "task").tag_words(sentences)]
    got = [[w["tag"] for w in s] for s in device.tag_words(sentences)]
    same = sum(a == b for g, w in zip(got, want) for a, b in zip(g, w)) / sum(len(w) for w in want)
    assert same == 1.0 if quantize == "none" else same >= 0.8
    run = cli("run", str(bundle), "Shehu Gusau ya ziyarci Kano ranar Litinin.", "--json")
    assert run.code == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["task"] == "tagging" and len(out["words"][0]) == 8 and "entities" in out
    for e in out["entities"][0]:
        assert out["texts"][0][e["start"]:e["end"]] == e["text"]
    assert "Gusau/" in cli("run", str(bundle), "Shehu Gusau ya ziyarci Kano.").stdout
    report = cli("eval", str(bundle), "--task", str(ner_task), "--languages", "hau_Latn", "--json")
    assert report.code == 0 and "entity_f1" in json.loads(report.stdout)[str(ner_task)]["scores"][0]


def test_sentiment_in_language_and_the_setting_is_recorded(cli, tiny_teacher, data_dir, tmp_path):
    """AfriSenti: labels in the target language itself (no English training data): in-language."""
    import edgelm

    task = tmp_path / "afrisenti"
    for split, n in (("train", 240), ("dev", 60), ("test", 80)):
        rows = (data_dir / "sentiment" / "afrisenti" / "swh_Latn" / f"{split}.tsv").read_text(encoding="utf-8")
        lines = rows.splitlines()
        (task / "swh_Latn").mkdir(parents=True, exist_ok=True)
        (task / "swh_Latn" / f"{split}.tsv").write_text("\n".join([lines[0], *lines[1::max(1, len(lines) // n)][:n]])
                                                       + "\n", encoding="utf-8")
    out = tmp_path / "run"
    result = cli("distill", "--teacher", str(tiny_teacher), "--task", str(task), "--target", "swh_Latn", "--out",
                 str(out), *FAST, "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["task_data"]["setting"] == "in-language" and summary["task_data"]["trained_on"] == ["swh_Latn"]
    # the teacher's note says what always answering the training split's majority label scores on dev, and a
    # teacher no better than that is flagged, on the console too (a constant lr of 1e-4 once made one on AfriSenti)
    labels = {split: [line.rsplit("\t", 1)[1] for line in (task / "swh_Latn" / f"{split}.tsv").read_text(
        encoding="utf-8").splitlines()[1:]] for split in ("train", "dev")}
    top = max(set(labels["train"]), key=labels["train"].count)
    note = json.loads((out / "task_teacher" / "task_teacher.json").read_text())
    assert note["majority_baseline"] == {"answer": top, "dev_score": round(labels["dev"].count(top) / 60, 4)}
    assert note["learnt_nothing"] == (note["dev_accuracy"] <= labels["dev"].count(top) / 60)
    assert ("warning: the task teacher learnt nothing" in result.stderr) == note["learnt_nothing"]
    model = edgelm.load(out / "task")
    assert sorted(model.labels) == ["negative", "neutral", "positive"]
    report = edgelm.evaluate(out / "task", tasks=str(task), languages="swh_Latn")
    score = report[str(task)]["scores"][0]
    assert score["setting"] == "model head" and 0 <= score["macro_f1"] <= score["accuracy"] + 1 and score["n"] == 80


def test_bad_task_inputs_are_one_line_and_write_nothing(cli, tiny_teacher, ner_run, ner_task, data_dir, tmp_path):
    base = ["--teacher", str(tiny_teacher), *FAST]
    out = tmp_path / "run"
    broken = tmp_path / "broken"
    _conll_slice(data_dir / "ner" / "eng_Latn" / "train.conll", broken / "train.conll", 20)
    with open(broken / "train.conll", "a", encoding="utf-8") as fh:
        fh.write("\nKano\tB-LOC\textra\n")
    assert_user_error(cli("distill", *base, "--task", str(broken), "--out", str(out)), "got 3 column")
    assert_user_error(cli("distill", *base, "--task", str(tmp_path / "missing"), "--out", str(out)), "does not exist")
    pos = tmp_path / "pos"
    _conll_slice(data_dir / "pos" / "eng_Latn" / "train.conll", pos / "eng_Latn" / "train.conll", 30)
    # a tagger with NER's labels is no teacher for POS; a tagger is no teacher for sentences
    assert_user_error(cli("distill", *base, "--task", str(pos), "--out", str(out), "--task-teacher",
                          str(ner_run / "task_teacher")), "not this task's labels")
    assert_user_error(cli("distill", *base, "--task", str(data_dir / "sentiment" / "nollysenti"), "--out", str(out),
                          "--task-teacher", str(ner_run / "task_teacher")), "needs a sequence classifier")
    assert_user_error(cli("distill", *base, "--task", str(ner_task), "--source", "swh_Latn", "--target", "hin_Deva",
                          "--out", str(out)), "has no training split in swh_Latn, hin_Deva")
    assert_user_error(cli("distill", *base, "--task", str(ner_task), "--task-target-share", "1", "--out", str(out)),
                      "in [0, 1)")
    assert_user_error(cli("distill", *base, "--task", str(data_dir / "sentiment" / "afrisenti"), "--target",
                          "swh_Latn", "--task-target-share", "0.5", "--out", str(out)), "has training rows in swh_Latn")
    assert not out.exists()
    before = tree_snapshot(ner_run)
    assert_user_error(cli("distill", "--teacher", str(tiny_teacher), "--task", str(pos), "--target", "hau_Latn",
                          "--corpus", f"hau_Latn={data_dir / 'corpus' / 'hau_Latn.txt.gz'}", "--out", str(ner_run),
                          *FAST, "--resume"), "holds a run for task")
    assert tree_snapshot(ner_run) == before
    assert_user_error(cli("eval", str(ner_run / "general"), "--task", str(ner_task), "--languages", "hau_Latn"),
                      "does not tag words")
    assert_user_error(cli("eval", str(ner_run / "task"), "--task", str(ner_task), "--languages", "yor_Latn"),
                      "no test split for yor_Latn")
