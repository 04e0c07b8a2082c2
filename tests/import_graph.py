"""Check edgelm's import graph: no cycles, imports only go down the layers, and the runtime stays torch-free.

What it checks, on every module of the project (read with `ast`, never imported):

* cycles: strongly connected components of the module graph, counting every import statement, including
  the ones inside functions and methods (a function-level import is exactly what hides a cycle until some
  call path triggers it); imports under `if TYPE_CHECKING:` are skipped, they never run;
* layers: a module may import only modules of its own rank or lower in LAYERS below; a module that
  matches no entry of LAYERS is an error, so a new top-level module has to be placed deliberately;
* torch in runtime: nothing under edgelm.runtime imports torch, transformers or safetensors.torch, at any
  level: the device side must install and run without them;
* unknown imports: an import of an edgelm module that does not exist (a name left over from a rename).

Why hand-written: third-party tools (import-linter, and grimp under it) discover a package's modules by
walking the folders that `importlib.util.find_spec("edgelm").submodule_search_locations` lists, i.e. the
package's own folder. setuptools' package-dir maps the top-level folders export/, kernels/ and bench/ into
the `edgelm` namespace (editable install: a meta-path finder), so those tools never see them, and
`edgelm.exporters` cannot be given to them as a package of its own (grimp: NotATopLevelModule). Here the
modules come from `[tool.setuptools] package-dir` in pyproject.toml, read at run time.

Run it from the repository root (exit status 0 when clean, 1 otherwise):

    .venv/bin/python tests/import_graph.py [ROOT]

tests/test_imports.py runs the same checks under pytest.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

# The pipeline, bottom to top: data -> teacher -> distillation -> routing -> exporters -> runtime, with
# evaluation and benchmarks reading everything, api over them, cli over api. runtime (the torch-free device
# side) sits low because exporters import it for parity checks. A module may import modules of its own
# rank or lower. The most specific matching prefix wins; a prefix matches the module itself and the
# modules below it, except the bare top-level package ("edgelm"), which matches only its own __init__.
LAYERS: dict[str, int] = {
    # 0: leaves and kernels: no edgelm imports above them
    "edgelm.errors": 0, "edgelm.version": 0, "edgelm.hashing": 0, "edgelm.cache": 0, "edgelm.atomic": 0,
    "edgelm.progress": 0, "edgelm.quiet": 0, "edgelm.tensorfile": 0, "edgelm.kernels": 0, "edgelm.words": 0,
    "edgelm.scores": 0, "edgelm.interop": 0,
    "edgelm.data": 1, "edgelm.runtime": 1, "edgelm.tradeoffs": 1,
    "edgelm.teacher": 2,
    "edgelm.checkpoint": 3, "edgelm.protocols": 3, "edgelm.encoder": 3, "edgelm.task_model": 3,
    "edgelm.distillation": 4,
    "edgelm.routing": 5,
    "edgelm.exporters": 6,
    "edgelm.artifacts": 7,
    "edgelm.evaluation": 8,
    "edgelm.benchmarks": 9,
    "edgelm.api": 10,
    "edgelm.cli": 11, "edgelm.benchmarks.experiments": 11, "edgelm.__main__": 11,
    "edgelm": 12,  # the package __init__ only
}

PROJECT = "edgelm"
RUNTIME = "edgelm.runtime"
FORBIDDEN_IN_RUNTIME = ("torch", "transformers", "safetensors.torch")


@dataclass(frozen=True)
class Import:
    """One imported name of one import statement, resolved to an absolute dotted name."""

    importer: str  # the importing module
    name: str  # what the statement names: `import a.b` -> "a.b"; `from a import b` -> "a.b"
    module: str  # the module part: `import a.b` -> "a.b"; `from a import b` -> "a"
    file: Path
    line: int


@dataclass(frozen=True)
class Edge:
    """An import between two project modules."""

    importer: str
    imported: str
    file: Path
    line: int


@dataclass
class Graph:
    root: Path
    modules: dict[str, Path] = field(default_factory=dict)  # module name -> its file
    imports: list[Import] = field(default_factory=list)  # every import, third-party ones included
    edges: list[Edge] = field(default_factory=list)  # imports between project modules
    unknown: list[Import] = field(default_factory=list)  # imports of edgelm modules that do not exist
    problems: list[str] = field(default_factory=list)  # package-dir entries pointing nowhere

    def where(self, file: Path, line: int) -> str:
        """file:line, relative to the repository root."""
        try:
            return f"{file.relative_to(self.root)}:{line}"
        except ValueError:
            return f"{file}:{line}"


# --- discovering modules ---------------------------------------------------------------------------------

def package_dirs(root: Path) -> dict[str, Path]:
    """`[tool.setuptools] package-dir` of ROOT/pyproject.toml: package name -> folder."""
    with open(root / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)
    mapping = config.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return {name: (root / folder).resolve() for name, folder in mapping.items() if name}


def find_modules(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Every module of the project (name -> file), and the package-dir entries whose folder is missing."""
    mapping = package_dirs(root)
    mapped_folders = set(mapping.values())
    modules: dict[str, Path] = {}
    problems: list[str] = []

    def walk(package: str, folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                if path.name == "__pycache__" or not (path / "__init__.py").is_file():
                    continue
                sub = f"{package}.{path.name}"
                if path.resolve() in mapped_folders or sub in mapping:
                    continue  # mapped on its own: walked under its own name
                walk(sub, path)
            elif path.suffix == ".py":
                modules[package if path.name == "__init__.py" else f"{package}.{path.stem}"] = path

    for package, folder in sorted(mapping.items()):
        if not folder.is_dir():
            problems.append(f"package-dir maps {package} to {folder}, which is not a folder")
            continue
        walk(package, folder)
    return modules, problems


# --- reading imports -------------------------------------------------------------------------------------

def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement at any depth, except those in the body of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda n: n.lineno)


def _base_package(module: str, file: Path, level: int) -> str | None:
    """The package a relative import of LEVEL dots starts from, or None when it climbs above the top."""
    parts = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        return None
    return ".".join(parts[: len(parts) - (level - 1)])


def read_imports(module: str, file: Path) -> list[Import]:
    """The imports of one module, with relative ones made absolute."""
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    result: list[Import] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            result += [Import(module, a.name, a.name, file, node.lineno) for a in node.names]
            continue
        base = node.module or ""
        if node.level:
            package = _base_package(module, file, node.level)
            if package is None:
                continue  # would fail at import time; nothing to resolve it to
            base = f"{package}.{base}" if base else package
        for alias in node.names:
            name = base if alias.name == "*" else f"{base}.{alias.name}"
            result.append(Import(module, name, base, file, node.lineno))
    return result


def _in_project(name: str) -> bool:
    return name == PROJECT or name.startswith(PROJECT + ".")


def _target(imp: Import, modules: dict[str, Path]) -> str | None:
    """The project module an import points at, or None if it names no known module."""
    if imp.name == imp.module:  # `import a.b.c` (or `from a import *`): the longest known prefix
        parts = imp.name.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in modules:
                return ".".join(parts[:n])
        return None
    if imp.name in modules:  # `from a import b` where a.b is a module
        return imp.name
    return imp.module if imp.module in modules else None


def build_graph(root: Path) -> Graph:
    """Read the whole project under ROOT: its modules, their imports, and the edges between modules."""
    root = root.resolve()
    modules, problems = find_modules(root)
    graph = Graph(root=root, modules=modules, problems=problems)
    for module, file in sorted(modules.items()):
        for imp in read_imports(module, file):
            graph.imports.append(imp)
            if not _in_project(imp.module):
                continue
            target = _target(imp, modules)
            if target is None or (imp.name == imp.module and target != imp.name):
                graph.unknown.append(imp)  # `import a.b.c` with no module a.b.c still gets its prefix's edge
            if target is not None and target != module:
                graph.edges.append(Edge(module, target, file, imp.line))
    # `from a import b, c` gives one edge per line and target
    graph.edges = sorted(set(graph.edges), key=lambda e: (e.importer, e.line, e.imported))
    return graph


# --- checks ----------------------------------------------------------------------------------------------

def _adjacency(graph: Graph) -> dict[str, list[str]]:
    adj: dict[str, set[str]] = {m: set() for m in graph.modules}
    for e in graph.edges:
        adj[e.importer].add(e.imported)
    return {m: sorted(targets) for m, targets in adj.items()}


def find_cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (iterative Tarjan), each sorted."""
    adj = _adjacency(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(adj):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(adj[node]):
                work.append((node, i + 1))
                nxt = adj[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
            if work:  # back in the caller: pass the low-link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(components)


def cycle_path(graph: Graph, component: list[str]) -> list[Edge]:
    """One concrete cycle through the component's first module, as the import statements that make it."""
    members = set(component)
    first: dict[tuple[str, str], Edge] = {}
    for e in graph.edges:
        if e.importer in members and e.imported in members:
            first.setdefault((e.importer, e.imported), e)
    adj: dict[str, list[str]] = {m: [] for m in component}
    for a, b in sorted(first):
        adj[a].append(b)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:  # breadth first: the shortest way back to start
        node = queue.popleft()
        for nxt in adj[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                hops = [*reversed(path), start]
                return [first[(a, b)] for a, b in zip(hops, hops[1:])]
            if nxt not in came_from and nxt != start:
                came_from[nxt] = node
                queue.append(nxt)
    return []  # not reached for a real component


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    """The rank of the most specific matching prefix; the bare top-level package matches only itself."""
    best: str | None = None
    for prefix in layers:
        matches = module == prefix or ("." in prefix and module.startswith(prefix + "."))
        if matches and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else layers[best]


def unlayered(graph: Graph, layers: dict[str, int] = LAYERS) -> list[str]:
    """Modules that match no entry of LAYERS."""
    return [m for m in sorted(graph.modules) if layer_of(m, layers) is None]


@dataclass(frozen=True)
class Violation:
    edge: Edge
    importer_rank: int
    imported_rank: int


def layer_violations(graph: Graph, layers: dict[str, int] = LAYERS) -> list[Violation]:
    """Every import of a module of higher rank than the importer's."""
    found = []
    for e in graph.edges:
        a, b = layer_of(e.importer, layers), layer_of(e.imported, layers)
        if a is not None and b is not None and b > a:
            found.append(Violation(e, a, b))
    return found


def torch_in_runtime(graph: Graph) -> list[Import]:
    """Imports of torch, transformers or safetensors.torch anywhere under edgelm.runtime."""
    def forbidden(name: str) -> bool:
        return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_RUNTIME)

    return [i for i in graph.imports
            if (i.importer == RUNTIME or i.importer.startswith(RUNTIME + "."))
            and (forbidden(i.module) or forbidden(i.name))]


# --- report ----------------------------------------------------------------------------------------------

def report(graph: Graph, layers: dict[str, int] = LAYERS) -> tuple[list[str], bool]:
    """The report's lines, and whether everything is clean."""
    lines = [f"{PROJECT} import graph: {len(graph.modules)} modules, {len(graph.edges)} imports"]
    ok = True

    def section(title: str, items: list[str]) -> None:
        nonlocal ok
        lines.append(f"{title}:" + ("" if items else " none"))
        lines.extend(items)
        ok = ok and not items

    if graph.problems:
        section("package-dir", [f"  {p}" for p in graph.problems])
    cycles = []
    for component in find_cycles(graph):
        cycles.append(f"  {len(component)} modules: {', '.join(component)}")
        cycles += [f"    {e.importer} -> {e.imported}  {graph.where(e.file, e.line)}"
                   for e in cycle_path(graph, component)]
    section("cycles", cycles)
    violations = [f"  {v.edge.importer} ({v.importer_rank}) -> {v.edge.imported} ({v.imported_rank})  "
                  f"{graph.where(v.edge.file, v.edge.line)}" for v in layer_violations(graph, layers)]
    violations += [f"  module {m} has no layer: add it to LAYERS" for m in unlayered(graph, layers)]
    section("layer violations", violations)
    section("torch in runtime", [f"  {i.importer} imports {i.name}  {graph.where(i.file, i.line)}"
                                 for i in torch_in_runtime(graph)])
    unknown = [f"  {i.importer} imports {i.name}: no such module  {graph.where(i.file, i.line)}"
               for i in graph.unknown]
    section("unknown imports", unknown)
    lines.append("OK" if ok else "FAILED")
    return lines, ok


def main(argv: list[str] | None = None, layers: dict[str, int] = LAYERS) -> int:
    """Print the report for the repository at argv[0] (default: this file's repository); 0 if clean."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    lines, ok = report(build_graph(root), layers)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
