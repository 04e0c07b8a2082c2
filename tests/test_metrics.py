"""DSI / GG / forgetting reduction / CDTR / ρ on hand-computed matrices, the undefined cases, and
the bad inputs of `edgelm metrics`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import assert_user_error

from edgelm.errors import EdgelmError
from edgelm.tradeoffs import ScoreMatrix, from_json, spearman, tradeoff_report

DOMAINS = ["A", "B", "C"]
SCORES = {
    "base": [0.6, 0.6, 0.6],
    "spec_A": [0.9, 0.5, 0.4],
    "spec_B": [0.55, 0.8, 0.45],
    "scar": [0.88, 0.78, 0.57],
    "q8": [0.58, 0.59, 0.57],
    "q4": [0.5, 0.5, 0.5],
    "q2": [0.3, 0.3, 0.3],
}


def matrix(**extra) -> ScoreMatrix:
    data = {"domains": DOMAINS, "scores": SCORES, "base": "base", "targets": {"spec_A": "A", "spec_B": "B"}} | extra
    return from_json(data)


def test_dsi_and_gg_by_hand():
    r = tradeoff_report(matrix())
    assert r["dsi"]["spec_A"]["ratio"] == pytest.approx(0.9 / 0.45)  # 2.0
    assert r["dsi"]["spec_A"]["bounded"] == pytest.approx(0.45 / 1.35)
    assert r["gg"]["spec_A"]["on"] == ["B", "C"]
    assert r["gg"]["spec_A"]["abs"] == pytest.approx(0.15) and r["gg"]["spec_A"]["rel"] == pytest.approx(0.25)
    assert r["gg"]["spec_B"]["rel"] == pytest.approx(1 - 0.5 / 0.6)
    assert r["gg"]["scar"]["on"] == DOMAINS  # no target: every domain is "elsewhere"
    assert r["gg"]["scar"]["rel"] == pytest.approx(1 - (0.88 + 0.78 + 0.57) / 3 / 0.6)
    assert "base" not in r["gg"] and r["raw"]["scores"][1] == SCORES["spec_A"]


def test_forgetting_reduction_uses_the_references_domains():
    r = tradeoff_report(matrix(), compare=[("scar", "spec_A"), ("spec_B", "spec_A")])
    scar, other = r["forgetting_reduction"]
    assert scar["on"] == ["B", "C"]
    assert scar["gg_method"] == pytest.approx(1 - 0.675 / 0.6) and scar["value"] == pytest.approx(1.5)
    assert other["value"] == pytest.approx(1 - (1 - 0.625 / 0.6) / 0.25)  # spec_B on B, C: 0.8, 0.45
    assert r["forgetting_reduction_mean"] == pytest.approx((scar["value"] + other["value"]) / 2)
    abs_form = tradeoff_report(matrix(), compare=[("scar", "spec_A")], gg_form="abs")["forgetting_reduction"][0]
    assert abs_form["value"] == pytest.approx(1 - (0.6 - 0.675) / 0.15)


def test_cdtr_gain_and_simple_by_hand():
    c = tradeoff_report(matrix())["cdtr"]
    assert c["domains"] == ["A", "B"] and c["specialists"] == ["spec_A", "spec_B"]
    want = [[1.0, (0.5 - 0.6) / (0.8 - 0.6)], [(0.55 - 0.6) / (0.9 - 0.6), 1.0]]
    assert np.allclose(c["matrix"], want)
    assert c["off_diagonal_mean"] == pytest.approx((want[0][1] + want[1][0]) / 2)
    s = tradeoff_report(matrix(), cdtr_form="simple")["cdtr"]
    assert np.allclose(s["matrix"], [[1.0, 0.5 / 0.9], [0.55 / 0.8, 1.0]])


def test_spearman_of_compression_intensity():
    r = tradeoff_report(matrix(intensity={"base": 32, "q8": 8, "q4": 4, "q2": 2}))
    assert r["spearman"]["intensity_vs_gg"] == {"rho": pytest.approx(-1.0), "n": 4}  # fewer bits, more lost
    stats = pytest.importorskip("scipy.stats")
    x, y = [1, 2, 2, 3, 7, 5], [1, 3, 2, 4, 4, 9]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman([1, 2], [2, 1])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_undefined_cases_are_nan_with_a_reason():
    one = from_json({"domains": ["A"], "scores": {"base": [0.5], "s": [0.7]}, "base": "base", "targets": {"s": "A"}})
    r = tradeoff_report(one)
    assert math.isnan(r["dsi"]["s"]["ratio"]) and math.isnan(r["gg"]["s"]["rel"])
    reasons = " | ".join(u["reason"] for u in r["undefined"])
    assert "at least two domains" in reasons and "single domain" in reasons and "two domains" in reasons
    flat = dict(SCORES, spec_B=[0.55, 0.6, 0.45])  # spec_B gains nothing on its own domain
    r = tradeoff_report(from_json({"domains": DOMAINS, "scores": flat, "base": "base",
                                   "targets": {"spec_A": "A", "spec_B": "B"}}))
    m = np.array(r["cdtr"]["matrix"], dtype=float)
    assert math.isnan(m[0, 1]) and math.isnan(m[1, 1]) and not math.isnan(m[1, 0])
    assert any(u["metric"] == "cdtr" and "no in-domain gain on B" in u["reason"] for u in r["undefined"])
    worse = dict(SCORES, spec_B=[0.55, 0.5, 0.45])  # spec_B is worse than the base on its own domain
    r = tradeoff_report(from_json({"domains": DOMAINS, "scores": worse, "base": "base",
                                   "targets": {"spec_A": "A", "spec_B": "B"}}))
    assert math.isnan(np.array(r["cdtr"]["matrix"], dtype=float)[0, 1])  # not a sign-flipped "transfer"
    gap = dict(SCORES, spec_A=[0.9, None, 0.4])  # a missing cell
    r = tradeoff_report(from_json({"domains": DOMAINS, "scores": gap, "base": "base", "targets": {"spec_A": "A"}}),
                        compare=[("scar", "spec_A")])
    assert math.isnan(r["dsi"]["spec_A"]["ratio"]) and math.isnan(r["gg"]["spec_A"]["rel"])
    assert math.isnan(r["forgetting_reduction"][0]["value"])
    assert any("missing scores: spec_A/B" in u["reason"] for u in r["undefined"])
    no_base = tradeoff_report(from_json({"domains": DOMAINS, "scores": SCORES, "targets": {"spec_A": "A"}}))
    assert math.isnan(no_base["gg"]["spec_A"]["rel"]) and "no base" in no_base["undefined"][0]["reason"]


@pytest.mark.parametrize("data,message", [
    ({"domains": DOMAINS, "scores": {"a": [0.1, 0.2]}}, "2 scores for 3 domains"),
    ({"domains": DOMAINS, "scores": {"a": [0.1, float("nan"), 0.2]}}, "NaN"),
    ({"domains": DOMAINS, "scores": {"a": [0.1, 1.5, 0.2]}}, "outside [0, 1]"),
    ({"domains": DOMAINS, "scores": {"a": [0.1, "high", 0.2]}}, "not a number"),
    ({"domains": DOMAINS, "scores": {"a": {"A": 0.1, "Z": 0.2}}}, "'Z'"),
    ({"domains": DOMAINS, "scores": SCORES, "base": "bse"}, "did you mean: base"),
    ({"domains": DOMAINS, "scores": SCORES, "targets": {"spec_A": "D"}}, "unknown domain 'D'"),
    ({"scores": SCORES}, "needs 'domains'"),
])
def test_bad_matrices_are_refused(data, message):
    with pytest.raises(EdgelmError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_json(data)


def test_cli_on_json_and_tsv(cli, tmp_path):
    spec = tmp_path / "scores.json"
    spec.write_text(json.dumps({"domains": DOMAINS, "scores": SCORES, "base": "base",
                                "targets": {"spec_A": "A", "spec_B": "B"}}))
    res = cli("metrics", str(spec), "--compare", "scar:spec_A", "--json")
    assert res.code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["forgetting_reduction"][0]["value"] == pytest.approx(1.5)
    assert report["raw"]["models"] == list(SCORES)
    tsv = tmp_path / "scores.tsv"
    tsv.write_text("model\tA\tB\tC\n" + "".join(f"{k}\t" + "\t".join(map(str, v)) + "\n" for k, v in SCORES.items()))
    res = cli("metrics", str(tsv), "--base", "base", "--target", "spec_A=A", "--target", "spec_B=B",
              "--intensity", "q8=8", "--intensity", "q4=4", "--intensity", "q2=2", "--intensity", "base=32")
    assert res.code == 0, res.stderr
    assert "CDTR (gain)" in res.stdout and "Spearman ρ intensity vs gg: -1.000" in res.stdout
    bad = tmp_path / "bad.tsv"
    bad.write_text("model\tA\tB\nx\t0.1\n")
    assert_user_error(cli("metrics", str(bad)), "has 2 cells; the header has 3")
    assert_user_error(cli("metrics", str(tsv), "--compare", "scar"), "takes A:B")
    assert_user_error(cli("metrics", str(tsv), "--target", "spec_A=Z"), "unknown domain 'Z'")
    assert_user_error(cli("metrics", str(tsv), "--cdtr", "odd"), "unknown CDTR form")
    assert_user_error(cli("metrics", str(tmp_path / "none.json")), "no score matrix")


def test_eval_domains_builds_matrices_metrics_reads(cli, tiny_teacher, teacher_dir, data_dir, tmp_path):
    """Languages and SIB-200 topics as domains, from real models on real data (an evenly spaced slice of
    SIB-200, as a device run would use), straight into metrics."""
    from edgelm.benchmarks.subset import write_subset

    langs = "eng_Latn,swh_Latn"
    sliced = ["--data", str(write_subset(data_dir, tmp_path / "data", langs.split(","), {"train": 280, "dev": 35, "test": 105}))]
    out = tmp_path / "langs.json"
    res = cli("eval", str(teacher_dir), str(tiny_teacher), "--domains", "languages", "--languages", langs,
              "--json", "--out", str(out), *sliced)
    assert res.code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["domains"] == langs.split(",") and list(m["scores"]) == [str(teacher_dir), str(tiny_teacher)]
    teacher, tiny = m["scores"][str(teacher_dir)], m["scores"][str(tiny_teacher)]
    assert all(0 <= v <= 1 for v in teacher + tiny) and min(teacher) > max(tiny)  # a random 32-wide BERT knows nothing
    res = cli("metrics", str(out), "--base", str(tiny_teacher), "--target", f"{teacher_dir}=swh_Latn", "--json")
    assert res.code == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["gg"][str(teacher_dir)]["rel"] < 0  # better than the base everywhere: no gap
    res = cli("eval", str(teacher_dir), str(tiny_teacher), "--domains", "topics", "--languages", langs, "--json", *sliced)
    assert res.code == 0, res.stderr
    topics = json.loads(res.stdout)
    assert len(topics["domains"]) == 7
    assert np.mean(topics["scores"][str(teacher_dir)]) > np.mean(topics["scores"][str(tiny_teacher)]) + 0.3
    assert_user_error(cli("eval", str(teacher_dir), "--domains", "genres"), "unknown domain grouping")
    assert_user_error(cli("eval", str(teacher_dir), "--domains", "languages", "-t", "sib200", "-t", "tatoeba"),
                      "single --task")
    assert_user_error(cli("eval", str(teacher_dir), str(tiny_teacher)), "--domains")


def test_eval_user_domains_from_a_tsv_or_folders(cli, teacher_dir, tiny_teacher, data_dir, tmp_path):
    """The user's own labelled text as domains: here SIB-200 train/test rows of two languages, as a
    TSV with a domain column and as a folder per domain; the real teacher beats a random BERT."""
    import csv

    from edgelm.data import load_sib200
    from edgelm.evaluation.user_domains import load_user_domains

    rows = [(r.text, r.label, lang, split) for lang in ("swh_Latn", "hin_Deva") for split in ("train", "test")
            for r in load_sib200(data_dir, lang, split)[::6 if split == "train" else 3]]  # the splits are sorted by topic
    tsv = tmp_path / "mine.tsv"
    with open(tsv, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["text", "label", "domain", "split"])
        w.writerows(r for r in rows if "\t" not in r[0])
    folder = tmp_path / "mine"
    for lang in ("swh_Latn", "hin_Deva"):
        (folder / lang).mkdir(parents=True)
        for split in ("train", "test"):
            with open(folder / lang / f"{split}.tsv", "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
                w.writerow(["text", "label"])
                w.writerows((t, y) for t, y, l, s in rows if l == lang and s == split and "\t" not in t)
    assert load_user_domains(tsv) == load_user_domains(folder)  # the two layouts read as the same rows
    res = cli("eval", str(teacher_dir), str(tiny_teacher), "--domains", str(tsv), "--json")
    assert res.code == 0, res.stderr
    m = json.loads(res.stdout)
    assert sorted(m["domains"]) == ["hin_Deva", "swh_Latn"]
    assert np.mean(m["scores"][str(teacher_dir)]) > np.mean(m["scores"][str(tiny_teacher)]) + 0.15
    # ...and score the same through the CLI (the cheap model suffices: the rows, not the model, differ by layout)
    res = cli("eval", str(tiny_teacher), "--domains", str(folder), "--json")
    assert res.code == 0, res.stderr
    by_folder = json.loads(res.stdout)
    assert dict(zip(by_folder["domains"], by_folder["scores"][str(tiny_teacher)])) == pytest.approx(
        dict(zip(m["domains"], m["scores"][str(tiny_teacher)])))
    (folder / "empty").mkdir()
    (folder / "empty" / "train.tsv").write_text("text\tlabel\n")
    (folder / "empty" / "test.tsv").write_text("text\tlabel\n")
    assert_user_error(cli("eval", str(teacher_dir), "--domains", str(folder)), "domain 'empty' has no test text")
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nhello\tx\n")
    assert_user_error(cli("eval", str(teacher_dir), "--domains", str(bad)), "no 'domain' column")
    short = tmp_path / "short.tsv"
    short.write_text("text\tlabel\tdomain\tsplit\nhello\tx\tA\n")
    assert_user_error(cli("eval", str(teacher_dir), "--domains", str(short)), "line 2: empty 'split'")
