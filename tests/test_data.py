"""Loaders for the real data sets and for plain-text corpora."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from helpers import assert_user_error

from edgelm.data import (data_root, load_sib200, load_tatoeba, normalize_language, read_corpus, sib200_labels,
                         sib200_languages, tatoeba_languages)
from edgelm.errors import EdgelmError


def test_sib200_splits_labels_and_parallel_rows(data_dir):
    assert len(sib200_languages(data_dir)) == 16
    labels = sib200_labels(data_dir)
    assert len(labels) == 7 and "science/technology" in labels
    sizes = {split: len(load_sib200(data_dir, "swh_Latn", split)) for split in ("train", "dev", "test")}
    assert sizes == {"train": 701, "dev": 99, "test": 204}
    eng, amh = load_sib200(data_dir, "eng_Latn", "test"), load_sib200(data_dir, "amh_Ethi", "test")
    assert [r.index_id for r in eng] == [r.index_id for r in amh]
    assert [r.label for r in eng] == [r.label for r in amh]
    assert {r.label for r in eng} <= set(labels)


def test_tatoeba_pairs(data_dir):
    langs = tatoeba_languages(data_dir)
    assert len(langs) == 14 and "zho_Hans" in langs and "eng_Latn" not in langs
    swh, eng = load_tatoeba(data_dir, "swh")
    assert len(swh) == len(eng) == 390


def test_language_codes_are_normalised_or_suggested():
    assert normalize_language("swh") == "swh_Latn"
    assert normalize_language("SWH_latn") == "swh_Latn"
    assert normalize_language("cmn") == "zho_Hans"
    with pytest.raises(EdgelmError, match="did you mean: swh_Latn"):
        normalize_language("swx_Latn")


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGELM_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    assert data_root(tmp_path / ".") == tmp_path.resolve()
    with pytest.raises(EdgelmError, match="does not exist"):
        data_root(tmp_path / "missing")


def test_corpus_reads_txt_gz_and_folders_skipping_bad_lines(tmp_path):
    folder = tmp_path / "swh"
    folder.mkdir()
    (folder / "a.txt").write_bytes("Habari ya asubuhi.\n\nNinapenda chai.\n".encode() + b"\xff\xfe broken\n")
    with gzip.open(folder / "b.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("Jua linawaka.\n")
    (folder / "ignored.json").write_text("{}")
    c = read_corpus(folder)
    assert c.lines == ["Habari ya asubuhi.", "Ninapenda chai.", "Jua linawaka."]
    assert c.skipped_non_utf8 == 1 and c.skipped_empty == 1 and len(c.files) == 2


def test_empty_corpus_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(EdgelmError, match="empty"):
        read_corpus(tmp_path / "empty.txt")
    with pytest.raises(EdgelmError, match="no .txt"):
        read_corpus(_mkdir(tmp_path / "nothing"))


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_corpus_cli_counts_non_utf8_lines(cli, tmp_path):
    import json

    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"one line\n\xc3\x28 not utf-8\ntwo line\n")
    result = cli("data", "corpus", str(corpus), "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["lines"] == 2 and report["skipped_non_utf8"] == 1
    (tmp_path / "e.txt").write_text("")
    assert_user_error(cli("data", "corpus", str(tmp_path / "e.txt")), "empty")


def test_data_info_json(cli, data_dir):
    import json

    result = cli("data", "info", "--json", "--data", str(data_dir))
    assert result.code == 0
    info = json.loads(result.stdout)
    assert info["sib200"]["yor_Latn"]["test"] == 204 and info["tatoeba"]["amh_Ethi"] == 168
