"""The import graph (tests/import_graph.py): no cycles, imports only go down the layers, a torch-free runtime;
and, on a fake project, proof that the checker finds each of those when they are there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import import_graph as ig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(ig.__file__).resolve()


# --- the real repository ---------------------------------------------------------------------------------

def _real() -> ig.Graph:
    return ig.build_graph(ROOT)


def test_real_repository_has_no_import_cycles():
    graph = _real()
    cycles = ig.find_cycles(graph)
    shown = ["\n".join([", ".join(c)] + [f"  {e.importer} -> {e.imported} {graph.where(e.file, e.line)}"
                                          for e in ig.cycle_path(graph, c)]) for c in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(shown)


def test_real_repository_imports_only_down_the_layers():
    graph = _real()
    shown = [f"{v.edge.importer} ({v.importer_rank}) -> {v.edge.imported} ({v.imported_rank}) "
             f"{graph.where(v.edge.file, v.edge.line)}" for v in ig.layer_violations(graph)]
    assert not shown, "layer violations:\n" + "\n".join(shown)


def test_real_repository_every_module_has_a_layer():
    missing = ig.unlayered(_real())
    assert not missing, "modules with no layer (add them to LAYERS in tests/import_graph.py): " + ", ".join(
        missing)


def test_real_runtime_is_torch_free():
    graph = _real()
    shown = [f"{i.importer} imports {i.name} {graph.where(i.file, i.line)}"
             for i in ig.torch_in_runtime(graph)]
    assert not shown, "torch on the device side:\n" + "\n".join(shown)


def test_real_repository_imports_only_existing_modules():
    graph = _real()
    shown = [f"{i.importer} imports {i.name} {graph.where(i.file, i.line)}" for i in graph.unknown]
    assert not shown, "imports of edgelm modules that do not exist:\n" + "\n".join(shown)


def test_script_exit_status_on_the_real_repository():
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "OK"


# --- a fake project: the checker can fail ----------------------------------------------------------------

FAKE = {
    "pyproject.toml": """
        [tool.setuptools]
        package-dir = { "edgelm" = "edgelm", "edgelm.exporters" = "export", "edgelm.benchmarks" = "bench" }
        """,
    "edgelm/__init__.py": "",
    "edgelm/errors.py": "class Oops(Exception):\n    pass\n",
    "edgelm/teacher.py": "",
    "edgelm/newthing.py": "import edgelm.errors\n",  # placed in no layer
    "edgelm/notes.txt": "import edgelm.teacher\n",  # not Python: ignored
    "edgelm/__pycache__/stale.py": "import edgelm.teacher\n",  # ignored
    "edgelm/data/__init__.py": "from .loader import load\n",  # relative: edgelm.data -> edgelm.data.loader
    "edgelm/data/loader.py": """
        from __future__ import annotations

        import typing
        from typing import TYPE_CHECKING

        from ..errors import Oops

        if TYPE_CHECKING:
            from edgelm.exporters.onnx import Exporter  # never runs: neither a violation nor a cycle
        if typing.TYPE_CHECKING:
            import edgelm.teacher
        else:
            import json


        def load():
            from edgelm import teacher  # rank 1 -> rank 2: the one layer violation
            return teacher
        """,
    "edgelm/runtime/__init__.py": "",
    "edgelm/runtime/bundle.py": """
        from typing import TYPE_CHECKING

        import numpy

        from edgelm.errors import Oops

        if TYPE_CHECKING:
            import transformers  # never runs: allowed


        def load():
            import torch.nn  # the one torch import on the device side
            return torch.nn
        """,
    "export/__init__.py": "",
    "export/onnx.py": """
        from edgelm.runtime import bundle  # exporters (6) may import runtime (1)


        def export():
            from edgelm.exporters import graphs  # a cycle with graphs, function-level only
            return graphs
        """,
    "export/graphs.py": """
        class Graph:
            def build(self):
                import edgelm.exporters.onnx as onnx  # closes the cycle
                import edgelm.exporters.graphs  # itself: ignored
                return onnx
        """,
    "bench/__init__.py": "",
    "bench/experiments/__init__.py": "from edgelm.benchmarks import harness\n",  # 11 -> 9: fine
    "bench/harness.py": "import edgelm.exporters\n",
}


def _fake(tmp_path: Path) -> Path:
    for name, text in FAKE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"))
    return tmp_path


def test_checker_reads_modules_and_imports_of_a_fake_project(tmp_path):
    graph = ig.build_graph(_fake(tmp_path))
    assert sorted(graph.modules) == [
        "edgelm", "edgelm.benchmarks", "edgelm.benchmarks.experiments", "edgelm.benchmarks.harness",
        "edgelm.data", "edgelm.data.loader", "edgelm.errors", "edgelm.exporters", "edgelm.exporters.graphs",
        "edgelm.exporters.onnx", "edgelm.newthing", "edgelm.runtime", "edgelm.runtime.bundle",
        "edgelm.teacher",
    ]
    assert graph.modules["edgelm.exporters.onnx"] == tmp_path / "export" / "onnx.py"
    edges = {(e.importer, e.imported, e.line) for e in graph.edges}
    assert edges == {
        ("edgelm.newthing", "edgelm.errors", 1),
        ("edgelm.data", "edgelm.data.loader", 1),
        ("edgelm.data.loader", "edgelm.errors", 6),
        ("edgelm.data.loader", "edgelm.teacher", 17),
        ("edgelm.runtime.bundle", "edgelm.errors", 5),
        ("edgelm.exporters.onnx", "edgelm.runtime.bundle", 1),
        ("edgelm.exporters.onnx", "edgelm.exporters.graphs", 5),
        ("edgelm.exporters.graphs", "edgelm.exporters.onnx", 3),
        ("edgelm.benchmarks.experiments", "edgelm.benchmarks.harness", 1),
        ("edgelm.benchmarks.harness", "edgelm.exporters", 1),
    }
    assert graph.unknown == [] and graph.problems == []


def test_checker_finds_the_cycle_violation_and_torch_of_a_fake_project(tmp_path):
    graph = ig.build_graph(_fake(tmp_path))

    cycles = ig.find_cycles(graph)
    assert cycles == [["edgelm.exporters.graphs", "edgelm.exporters.onnx"]]
    path = [(e.importer, e.imported, graph.where(e.file, e.line)) for e in ig.cycle_path(graph, cycles[0])]
    assert path == [("edgelm.exporters.graphs", "edgelm.exporters.onnx", "export/graphs.py:3"),
                    ("edgelm.exporters.onnx", "edgelm.exporters.graphs", "export/onnx.py:5")]

    violations = [(v.edge.importer, v.edge.imported, v.importer_rank, v.imported_rank, v.edge.line)
                  for v in ig.layer_violations(graph)]
    assert violations == [("edgelm.data.loader", "edgelm.teacher", 1, 2, 17)]
    assert ig.unlayered(graph) == ["edgelm.newthing"]

    assert [(i.importer, i.name, i.line) for i in ig.torch_in_runtime(graph)] == [
        ("edgelm.runtime.bundle", "torch.nn", 12)]


def test_checker_takes_a_layers_table(tmp_path):
    graph = ig.build_graph(_fake(tmp_path))
    layers = {**ig.LAYERS, "edgelm.newthing": 0, "edgelm.teacher": 1}
    assert ig.unlayered(graph, layers) == []
    assert ig.layer_violations(graph, layers) == []
    assert ig.layer_of("edgelm.newthing") is None  # the bare package name matches only itself
    assert ig.layer_of("edgelm") == 12
    assert ig.layer_of("edgelm.benchmarks.experiments.sweep") == 11  # the most specific prefix wins


def test_checker_reports_unknown_imports_and_missing_folders(tmp_path):
    root = _fake(tmp_path)
    (root / "edgelm" / "errors.py").write_text("from edgelm.gone import thing\nimport edgelm.data.nope\n")
    (root / "pyproject.toml").write_text(
        '[tool.setuptools]\npackage-dir = { "edgelm" = "edgelm", "edgelm.exporters" = "export", '
        '"edgelm.kernels" = "kernels", "edgelm.benchmarks" = "bench" }\n')
    graph = ig.build_graph(root)
    assert [(i.name, i.line) for i in graph.unknown] == [("edgelm.gone.thing", 1), ("edgelm.data.nope", 2)]
    assert len(graph.problems) == 1 and "edgelm.kernels" in graph.problems[0]


def test_script_fails_on_the_fake_project(tmp_path):
    root = _fake(tmp_path)
    assert ig.main([str(root)]) == 1
    done = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert out.splitlines()[0] == "edgelm import graph: 14 modules, 10 imports"
    assert "edgelm.exporters.graphs -> edgelm.exporters.onnx  export/graphs.py:3" in out
    assert "edgelm.data.loader (1) -> edgelm.teacher (2)  edgelm/data/loader.py:17" in out
    assert "module edgelm.newthing has no layer: add it to LAYERS" in out
    assert "edgelm.runtime.bundle imports torch.nn  edgelm/runtime/bundle.py:12" in out
    assert out.splitlines()[-1] == "FAILED"
