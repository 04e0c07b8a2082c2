"""`edgelm report` draws every committed benchmark results file, and refuses what is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_user_error

RESULTS = sorted((Path(__file__).resolve().parents[1] / "bench" / "results").glob("*.json"))


def test_every_committed_results_file_is_drawn(cli, tmp_path):
    """The README's command, `edgelm report bench/results/*.json`: every file is taken, each drawable one drawn."""
    from edgelm.benchmarks.plots import KINDS, kind_of

    drawable = [p for p in RESULTS if kind_of(json.loads(p.read_text())) in KINDS]
    assert drawable, "bench/results/ holds no results file edgelm draws"
    r = cli("report", *map(str, RESULTS), "--out", str(tmp_path))
    assert r.code == 0, r.stderr
    pngs = sorted(tmp_path.glob("*.png"))
    assert len(pngs) >= len(drawable) and r.stdout.count(".png") == len(pngs)
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 400_000, png.name


@pytest.mark.parametrize("content,words", [("not json", "not JSON"), ('{"some": "thing"}', "not a results file"),
                                           ("[1, 2]", "not a results file")])
def test_report_refuses_what_is_not_a_results_file(cli, tmp_path, content, words):
    f = tmp_path / "x.json"
    f.write_text(content)
    assert_user_error(cli("report", str(f), "--out", str(tmp_path / "plots")), words)
    assert not (tmp_path / "plots").exists()


def test_report_names_a_missing_file(cli, tmp_path):
    assert_user_error(cli("report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "p")), "does not exist")
