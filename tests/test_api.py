"""The Python API: the README's example runs as written, the functions keep the command line's
defaults and errors, and `import edgelm` stays light."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tree_snapshot

from edgelm.errors import EdgelmError

ROOT = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    """The ```python block of the README's "Python" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's Python section has one example"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_python_example_runs(teacher_dir, tmp_path):
    """Run as a user would: a fresh interpreter in an empty folder, the real teacher and data."""
    script = tmp_path / "example.py"
    script.write_text(readme_python_example(), encoding="utf-8")
    env = dict(os.environ, EDGELM_DATA=str(ROOT.parent / "shared" / "data"))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    cosines = [float(x) for x in re.findall(r"cosine torch vs int8 bundle: \[([\d. ]+)\]", out)[0].split()]
    assert len(cosines) == 2 and min(cosines) > 0.98, out
    accuracy = re.findall(r"SIB-200 swh_Latn ([\d.]+)", out)
    assert accuracy and 1 / 7 < float(accuracy[0]) <= 1, out  # above chance after a few steps
    assert (tmp_path / "runs" / "py-swh" / "general" / "model.safetensors").is_file()
    assert (tmp_path / "runs" / "py-swh-int8" / "manifest.json").is_file()


def test_import_edgelm_lists_its_api_and_imports_no_torch():
    code = ("import sys, edgelm; names = sorted(edgelm.__all__); "
            "[getattr(edgelm, n) for n in names]; "
            "print(names); print([m for m in ('torch', 'transformers') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, heavy = done.stdout.strip().splitlines()
    for name in ("load", "distill", "route", "export", "evaluate", "bench", "metrics", "Embedder", "Classifier"):
        assert f"'{name}'" in names
    assert heavy == "[]"  # the API's names resolve lazily: nothing heavy until a stage runs


def test_api_refuses_what_the_cli_refuses(tiny_teacher, tmp_path):
    import edgelm

    out = tmp_path / "run"
    with pytest.raises(EdgelmError, match="no setting 'layer'"):
        edgelm.distill("swh_Latn", out=out, teacher=str(tiny_teacher), layer=2)
    with pytest.raises(EdgelmError, match="both eng_Latn"):
        edgelm.distill("eng", out=out, teacher=str(tiny_teacher))
    with pytest.raises(EdgelmError, match="unknown language"):
        edgelm.distill("xyz_Latn", out=out, teacher=str(tiny_teacher))
    with pytest.raises(EdgelmError, match="not available for onnx"):
        edgelm.export(tiny_teacher, tmp_path / "b", quantize="fp16")
    with pytest.raises(EdgelmError, match="single --task"):
        edgelm.evaluate([tiny_teacher], domains="languages", tasks=["sib200", "tatoeba"])
    with pytest.raises(EdgelmError, match="at least one target"):
        edgelm.bench()
    assert tree_snapshot(tmp_path) == {}


def test_api_and_cli_share_defaults():
    """The CLI's options default to the API's parameters (or the stage config the API fills)."""
    import inspect

    import edgelm
    from edgelm.cli.device import bench_command, export_command
    from edgelm.cli.distill import distill_command
    from edgelm.distillation.config import DistillConfig

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    for name in ("source", "teacher", "phase", "task"):
        assert default(distill_command, name) == default(edgelm.distill, name)
    assert default(distill_command, "target") == default(edgelm.distill, "target")
    for name in ("layers", "steps", "batch_size", "lr", "density", "full_epochs", "sparse_epochs", "seed", "teacher_lr",
                 "task_lr", "teacher_epochs"):
        assert default(distill_command, name) == getattr(DistillConfig(), name), name
    for name in ("target", "quantize", "overwrite"):
        assert default(export_command, name) == default(edgelm.export, name), name
    assert default(bench_command, "threads") == default(edgelm.bench, "threads")
    assert default(bench_command, "runs") == default(edgelm.bench, "runs")
