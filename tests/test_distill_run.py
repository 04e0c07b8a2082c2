"""`edgelm distill` end to end on a tiny teacher with the real tokenizer and the real data:
both phases, output that loads, resume after a kill, and the bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import assert_user_error, tree_snapshot
from safetensors.torch import load_file

from edgelm.kernels.sparse_diff import SparseDiff

FAST = ["--layers", "2", "--batch-size", "8", "--teacher-epochs", "1", "--full-epochs", "1", "--sparse-epochs", "1"]


def test_both_phases_produce_loadable_students(cli, tiny_teacher, tmp_path):
    out = tmp_path / "run"
    result = cli("distill", "--teacher", str(tiny_teacher), "--out", str(out), "--steps", "6", *FAST,
                 "--density", "0.05", "--json")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["vocabulary"]["vocab_after"] < summary["vocabulary"]["vocab_before"] / 10
    assert summary["parameters"]["student"] < summary["parameters"]["teacher"] / 5
    assert summary["corpora"]["swh_Latn"]["sentences"] == 800  # SIB-200 train + dev, never test
    # Phase 1 output: a plain transformers checkpoint with a trimmed tokenizer.
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModel.from_pretrained(out / "general")
    tok = AutoTokenizer.from_pretrained(out / "general")
    assert model.config.num_hidden_layers == 2 and len(tok) == model.config.vocab_size
    assert len((out / "general_log.csv").read_text().splitlines()) == 1 + 6 // 10 + 1
    # Phase 2: the merged classifier equals phase 1's body plus the stored sparse diff.
    clf = AutoModelForSequenceClassification.from_pretrained(out / "task")
    assert clf.config.num_labels == 7
    diff = SparseDiff.load(out / "task" / "task_diff.safetensors")
    assert 0 < diff.nnz <= summary["task"]["k"]
    body = {f"bert.{k}": v for k, v in load_file(out / "general" / "model.safetensors").items()}
    merged = load_file(out / "task" / "model.safetensors")
    diff.apply(body)
    for name in diff.indices:
        assert torch.allclose(body[name], merged[name], atol=1e-6), name
    untouched = [n for n in body if n not in diff.indices and n in merged]
    assert all(torch.equal(body[n], merged[n]) for n in untouched)
    # Each folder says what it is, and `edgelm.load` gives an object typed by what it can do.
    import edgelm
    from edgelm.protocols import Classifier, Embedder

    assert edgelm.describe(out / "general") | {"provenance": None, "edgelm_version": None} == {
        "kind": "student", "format": 1, "edgelm_version": None, "provenance": None}
    assert edgelm.describe(out / "general")["provenance"]["languages"] == ["eng_Latn", "swh_Latn"]
    assert edgelm.describe(out / "task")["kind"] == "task_model"
    assert edgelm.describe(out / "task_teacher")["kind"] == "task_model"
    student, task = edgelm.load(out / "general"), edgelm.load(out / "task")
    assert isinstance(student, Embedder) and not isinstance(student, Classifier)
    assert isinstance(task, Classifier) and isinstance(task, Embedder) and len(task.labels) == 7
    (pred,) = task.predict(["Serikali imetangaza bajeti mpya."])
    assert pred["label"] in task.labels and abs(sum(pred["probabilities"].values()) - 1) < 1e-5
    # And `edgelm eval` takes both.
    report = cli("eval", str(out / "task"), "--languages", "swh_Latn", "--json")  # SIB-200 and Tatoeba
    assert report.code == 0, report.stderr
    both = json.loads(report.stdout)
    assert both["sib200"]["probe"]["kind"] == "model_head"  # its own head on SIB-200 ...
    assert both["tatoeba"]["scores"][0]["n"] == 390  # ... and its body's sentence vectors for retrieval
    assert both["model"]["head_parameters"] > 0 and both["model"]["labels"] == task.labels


def _general_weights(out: Path) -> dict:
    return load_file(out / "general" / "model.safetensors")


def _kill_at_first_checkpoint(out: Path, args: list[str], stage: str) -> Path:
    """Run `edgelm distill --out OUT ARGS` and SIGKILL it as soon as `stage` writes its first checkpoint;
    return that checkpoint's state.json (the stage's output must not exist yet)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgelm", "distill", "--out", str(out), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = out / "checkpoints" / stage / "state.json"
    deadline = time.time() + 300
    while not state.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / stage).exists(), f"the run finished {stage} before it could be killed"
    return state


@pytest.mark.parametrize("extra,steps", [([], 120), (["--alpha-contrastive", "0.1"], 40)], ids=["plain", "contrastive"])
def test_resume_after_a_kill_gives_the_uninterrupted_result(tiny_teacher, tmp_path, extra, steps):
    """Bit for bit; with the contrastive term, whose memory bank a resumed run rebuilds from the steps
    before (the teacher then embeds them in other chunks), to float rounding."""
    args = ["--teacher", str(tiny_teacher), "--phase", "general", "--steps", str(steps), "--checkpoint-every", "5",
            "--layers", "2", "--batch-size", "8", *extra]
    env = dict(os.environ)
    straight = tmp_path / "straight"
    subprocess.run([sys.executable, "-m", "edgelm", "distill", "--out", str(straight), *args], env=env, check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    state = _kill_at_first_checkpoint(killed, args, "general")
    done_before = json.loads(state.read_text())["state"]["step"]
    assert 0 < done_before < steps
    resumed = subprocess.run([sys.executable, "-m", "edgelm", "distill", "--out", str(killed), *args, "--resume"],
                             env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _general_weights(straight), _general_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert (torch.equal(a[name], b[name]) if not extra else torch.allclose(a[name], b[name], atol=1e-5)), name
    log = [line.split(",")[0] for line in (killed / "general_log.csv").read_text().splitlines()[1:]]
    assert log == [str(s) for s in range(10, steps + 1, 10)]


def test_a_task_teacher_killed_after_an_epoch_resumes_to_the_uninterrupted_one(cli, tiny_teacher, data_dir, tmp_path):
    """The task teacher checkpoints every epoch (with its dropout's RNG): a kill costs at most one epoch,
    and the resumed teacher is the uninterrupted one, bit for bit. On a small slice of SIB-200 as the
    user's own sentence task, so that epochs are short."""
    import csv

    from edgelm.data import load_sib200

    task = tmp_path / "topics" / "eng_Latn"
    task.mkdir(parents=True)
    for split, rows in (("train", load_sib200(data_dir, "eng_Latn", "train")[::8]),
                        ("dev", load_sib200(data_dir, "eng_Latn", "dev")[::4])):
        with open(task / f"{split}.tsv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            writer.writerow(["text", "label"])
            writer.writerows((r.text, r.label) for r in rows if "\t" not in r.text)
    args = ["--teacher", str(tiny_teacher), "--task", str(task.parent), "--steps", "4", "--layers", "2", "--batch-size",
            "8", "--teacher-epochs", "5", "--full-epochs", "1", "--sparse-epochs", "1"]
    straight = tmp_path / "straight"
    assert cli("distill", "--out", str(straight), *args).code == 0
    killed = tmp_path / "killed"
    state = _kill_at_first_checkpoint(killed, args, "task_teacher")
    assert 1 <= json.loads(state.read_text())["state"]["epoch"] < 5
    resumed = cli("distill", "--out", str(killed), *args, "--resume")
    assert resumed.code == 0, resumed.stderr
    a, b = (load_file(run / "task_teacher" / "model.safetensors") for run in (straight, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    notes = [json.loads((run / "task_teacher" / "task_teacher.json").read_text()) for run in (straight, killed)]
    assert notes[0]["history"] == notes[1]["history"] and len(notes[0]["history"]) == 5
    assert not (killed / "checkpoints" / "task_teacher").exists()  # the saved teacher supersedes its training state


def test_bad_inputs_get_one_line_and_change_nothing(cli, tiny_teacher, tmp_path):
    base = ["--teacher", str(tiny_teacher), "--phase", "general", "--steps", "2", "--layers", "2"]
    out = tmp_path / "run"
    assert_user_error(cli("distill", *base, "--out", str(out), "--target", "eng_Latn"), "both eng_Latn")
    assert_user_error(cli("distill", *base, "--out", str(out), "--layers", "9"), "more than the teacher")
    assert_user_error(cli("distill", *base, "--out", str(out), "--target", "xyz_Latn"), "unknown language")
    assert_user_error(cli("distill", *base, "--out", str(out), "--no-bundled"), "no training text for eng_Latn")
    small = tmp_path / "small.txt"
    small.write_text("Habari.\nAsante.\nKaribu.\n")
    big = tmp_path / "en.txt"
    big.write_text("\n".join(f"Sentence number {i} is here." for i in range(40)))
    assert_user_error(cli("distill", *base, "--out", str(out), "--no-bundled", "--corpus", f"eng_Latn={big}",
                          "--corpus", f"swh_Latn={small}"), "fewer than one batch")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_user_error(cli("distill", *base, "--out", str(out), "--corpus", f"swh_Latn={empty}"), "empty")
    assert_user_error(cli("distill", *base, "--out", str(out), "--corpus", "swh_Latn"), "LANG=PATH")
    assert not out.exists()


def test_an_output_folder_with_another_run_is_refused(cli, tiny_teacher, tmp_path):
    base = ["--teacher", str(tiny_teacher), "--phase", "general", "--layers", "2", "--batch-size", "8"]
    out = tmp_path / "run"
    assert cli("distill", *base, "--steps", "2", "--out", str(out)).code == 0
    before = tree_snapshot(out)
    assert_user_error(cli("distill", *base, "--steps", "2", "--out", str(out)), "--resume", "--overwrite")
    assert_user_error(cli("distill", *base, "--steps", "3", "--out", str(out), "--resume"), "different run", "steps")
    assert tree_snapshot(out) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_user_error(cli("distill", *base, "--steps", "2", "--out", str(other)), "not empty")
    assert cli("distill", *base, "--steps", "3", "--out", str(out), "--overwrite").code == 0


def test_a_full_disk_during_a_checkpoint_is_a_clear_error(cli, tiny_teacher, tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("needs permission to mount a small tmpfs (root)")
    try:
        result = cli("distill", "--teacher", str(tiny_teacher), "--phase", "general", "--steps", "4",
                     "--checkpoint-every", "2", "--layers", "2", "--batch-size", "8", "--out", str(mnt / "run"))
        assert_user_error(result, "disk filled up", "--resume")
        leftovers = [p for p in (mnt / "run").rglob("*") if ".tmp-" in p.name]
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
