"""The package layout: one namespace over the top-level folders, a light import, a readable CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_top_level_folders_are_subpackages():
    import edgelm.benchmarks
    import edgelm.exporters
    import edgelm.kernels

    for module, folder in ((edgelm.exporters, "export"), (edgelm.kernels, "kernels"), (edgelm.benchmarks, "bench")):
        assert Path(module.__file__).parent.name == folder
        assert module.__doc__


def test_non_editable_install_maps_the_folders(tmp_path):
    """`pip install .` (here into a target folder, without dependencies) keeps the mapping."""
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
         str(target), str(ROOT)], capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    code = ("import edgelm.exporters, edgelm.kernels, edgelm.benchmarks, edgelm.cli, edgelm.distillation, edgelm.runtime, "
            "edgelm.evaluation, edgelm.teacher, edgelm.data; print(edgelm.exporters.__file__)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(target / "edgelm" / "export"))


def test_importing_edgelm_and_its_cli_does_not_import_torch():
    code = ("import sys, edgelm, edgelm.cli, edgelm.data, edgelm.exporters, edgelm.kernels, edgelm.benchmarks, edgelm.runtime;"
            "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; print(heavy)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_help_lists_the_commands(cli):
    result = cli("--help")
    assert result.code == 0
    for command in ("teacher", "eval", "data", "version"):
        assert command in result.stdout
    assert cli("teacher", "--help").code == 0
    assert "pull" in cli("teacher", "--help").stdout


def test_version(cli):
    import edgelm

    result = cli("version")
    assert result.code == 0 and result.stdout.strip() == edgelm.__version__


@pytest.mark.parametrize("args", [["eval", "--help"], ["data", "info", "--help"], ["teacher", "pull", "--help"]])
def test_number_reporting_commands_offer_json(cli, args):
    result = cli(*args)
    assert result.code == 0 and "--json" in result.stdout
