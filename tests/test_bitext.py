"""User bitext as parallel anchors (MAFAND-MT, the real files), NTREX kept out of training, NTREX retrieval."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_user_error

from edgelm.data.bitext import read_bitext
from edgelm.errors import EdgelmError


def _mafand(data_dir: Path, lang: str) -> Path:
    return data_dir / "parallel" / "mafand" / f"eng-{lang}.tsv"


def test_the_mafand_tsv_reads_as_pairs(data_dir):
    b = read_bitext(str(_mafand(data_dir, "swh_Latn")))
    assert b.languages == ("eng_Latn", "swh_Latn")
    assert len(b.pairs) + b.skipped_empty == 30721
    assert b.side("swh_Latn") == 1 and all(s and t for s, t in b.pairs[:100])


def test_two_line_aligned_files(tmp_path, data_dir):
    pairs = read_bitext(str(_mafand(data_dir, "hau_Latn"))).pairs[:50]
    (tmp_path / "a.en").write_text("\n".join(p[0] for p in pairs) + "\n", encoding="utf-8")
    (tmp_path / "a.ha").write_text("\n".join(p[1] for p in pairs) + "\n", encoding="utf-8")
    b = read_bitext(f"eng={tmp_path / 'a.en'},hau_Latn={tmp_path / 'a.ha'}")
    assert b.languages == ("eng_Latn", "hau_Latn") and b.pairs == pairs
    (tmp_path / "a.ha").write_text("\n".join(p[1] for p in pairs[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(EdgelmError, match="not aligned .50 lines in .*, 49 in"):
        read_bitext(f"eng_Latn={tmp_path / 'a.en'},hau_Latn={tmp_path / 'a.ha'}")


@pytest.mark.parametrize("content, message", [
    ("eng_Latn\tswh_Latn\nonly one column\n", ":2: 1 column, a bitext row has two"),
    ("eng_Latn\tswh_Latn\na\tb\tc\n", ":2: 3 columns"),
    ("hello\tworld\tagain\n", "the first line must name the two languages"),
    ("eng_Latn\tswh_Latn\n\n", "holds no sentence pair"),
    ("eng_Latn\teng_Latn\na\tb\n", "both sides are eng_Latn"),
])
def test_malformed_bitext_is_refused(tmp_path, content, message):
    f = tmp_path / "bad.tsv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(EdgelmError, match=message.replace("(", r"\(")):
        read_bitext(str(f))


def test_a_side_in_the_wrong_script_is_refused(tmp_path, data_dir):
    # NTREX's Hindi and English lines written with the columns swapped under an eng/hin header
    hin = (data_dir / "parallel" / "ntrex" / "hin_Deva.txt").read_text(encoding="utf-8").splitlines()[:40]
    eng = (data_dir / "parallel" / "ntrex" / "eng_Latn.txt").read_text(encoding="utf-8").splitlines()[:40]
    f = tmp_path / "swapped.tsv"
    f.write_text("eng_Latn\thin_Deva\n" + "".join(f"{h}\t{e}\n" for h, e in zip(hin, eng)), encoding="utf-8")
    with pytest.raises(EdgelmError, match="side 1 .eng_Latn.: its letters are mostly DEVANAGARI, not LATIN"):
        read_bitext(str(f))


def test_bitext_anchors_targets_and_evaluation_sentences_stay_out(tmp_path, data_dir):
    from edgelm.distillation.config import DistillConfig
    from edgelm.distillation.run import collect_corpora, parallel_pairs

    mafand = read_bitext(str(_mafand(data_dir, "hau_Latn")))
    ntrex_eng = (data_dir / "parallel" / "ntrex" / "eng_Latn.txt").read_text(encoding="utf-8").splitlines()
    ntrex_hau = (data_dir / "parallel" / "ntrex" / "hau_Latn.txt").read_text(encoding="utf-8").splitlines()
    f = tmp_path / "leaky.tsv"  # 300 real training pairs plus 5 NTREX (evaluation) pairs
    rows = mafand.pairs[:300] + list(zip(ntrex_eng[:5], ntrex_hau[:5]))
    f.write_text("eng_Latn\thau_Latn\n" + "".join(f"{a}\t{b}\n" for a, b in rows), encoding="utf-8")
    leaky = read_bitext(str(f))
    cfg = DistillConfig(target="hau_Latn")
    corpora, report = collect_corpora(cfg, data_dir, {}, True, [leaky])
    assert report["hau_Latn"]["test_sentences_excluded"] == 5
    assert report["eng_Latn"]["test_sentences_excluded"] >= 5
    assert not set(ntrex_hau[:5]) & set(corpora["hau_Latn"])
    assert any(s.startswith("bitext ") for s in report["hau_Latn"]["sources"])
    pairs = parallel_pairs(cfg, data_dir, corpora, [leaky])
    anchored = [i for i in pairs["hau_Latn"] if i >= 0]
    assert len(anchored) == len({p[1] for p in mafand.pairs[:300]})  # every training pair, no NTREX one
    i = corpora["hau_Latn"].index(mafand.pairs[0][1])
    assert corpora["eng_Latn"][pairs["hau_Latn"][i]] == mafand.pairs[0][0]


def test_bitext_bad_input_on_the_command_line(cli, tiny_teacher, tmp_path, data_dir):
    out = tmp_path / "run"
    result = cli("distill", "--teacher", str(tiny_teacher), "--target", "swh_Latn", "--out", str(out),
                 "--bitext", str(_mafand(data_dir, "yor_Latn")))
    assert_user_error(result, "pairs eng_Latn and yor_Latn; this run needs pairs of eng_Latn and swh_Latn")
    assert not out.exists()
    result = cli("distill", "--teacher", str(tiny_teacher), "--out", str(out), "--bitext", str(tmp_path / "none.tsv"))
    assert_user_error(result, "does not exist")
    assert not out.exists()


def test_ntrex_retrieval_with_the_real_teacher(cli, teacher_dir, data_dir, tmp_path):
    import json

    folder = tmp_path / "parallel" / "ntrex"  # the first 200 lines of the real files: the full set takes minutes
    folder.mkdir(parents=True)
    for lang in ("eng_Latn", "swh_Latn"):
        lines = (data_dir / "parallel" / "ntrex" / f"{lang}.txt").read_text(encoding="utf-8").splitlines()[:200]
        (folder / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("eval", "e5-small", "--task", "ntrex", "--languages", "swh_Latn", "--data", str(tmp_path), "--json")
    assert result.code == 0, result.stderr
    score = json.loads(result.stdout)["ntrex"]["scores"][0]
    assert score["language"] == "swh_Latn" and score["n"] == 200
    assert score["accuracy"] > 0.85  # the teacher finds most translations among 200 news sentences
    bad = cli("eval", "e5-small", "--task", "ntrex", "--languages", "zho_Hans")
    assert_user_error(bad, "NTREX data", "lacks zho_Hans")
