"""`edgelm eval` on the real teacher and real data, and the metrics behind it."""

from __future__ import annotations

import json

import numpy as np

from edgelm.evaluation.sib200 import macro_f1
from edgelm.evaluation.tatoeba import retrieval_accuracy


def test_macro_f1_by_hand():
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fp0 fn1 -> 0
    assert abs(macro_f1(gold, pred, 3) - (0.5 + 0.8 + 0.0) / 3) < 1e-12


def test_retrieval_accuracy_by_hand():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 0.1]])
    # a0 -> b0 (1.0 > 0.995) right; a1 -> b1 (0.0995 > 0) right.  b0 -> a0 right; b1 -> a0 (0.995) wrong.
    to_b, to_a = retrieval_accuracy(a, b)
    assert (to_b, to_a) == (1.0, 0.5)


def test_eval_teacher_json(cli, teacher_dir, tmp_path):
    out = tmp_path / "report.json"
    result = cli("eval", str(teacher_dir), "--languages", "eng_Latn,swh_Latn,yor_Latn", "--json", "--out", str(out))
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert json.loads(out.read_text()) == report
    sib = {s["language"]: s["accuracy"] for s in report["sib200"]["scores"]}
    tat = {s["language"]: s for s in report["tatoeba"]["scores"]}
    # The teacher's known quality (README reference): far below this means something broke.
    assert sib["eng_Latn"] > 0.84 and sib["swh_Latn"] > 0.62 and sib["yor_Latn"] > 0.5
    assert sib["eng_Latn"] > sib["swh_Latn"] > 0.4
    assert set(tat) == {"swh_Latn"}  # Tatoeba has no Yoruba, and English is the pivot
    assert tat["swh_Latn"]["accuracy"] > 0.7 and tat["swh_Latn"]["n"] == 390
    assert 117e6 < report["model"]["parameters"] < 118e6
    assert report["model"]["recipe"]["prefix"] == "query: "
    assert report["settings"]["source"] == "eng_Latn" and report["data"]


def test_eval_table_output(cli, teacher_dir):
    result = cli("eval", str(teacher_dir), "--task", "tatoeba", "--languages", "amh")
    assert result.code == 0, result.stderr
    assert "amh_Ethi" in result.stdout and "Tatoeba" in result.stdout
