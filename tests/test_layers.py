"""The import graph: no cycle among linewatch's modules, and every import points down the layers.

Layers, bottom to top (docs/architecture.md, linewatch/__init__.py):

    linewatch/                          what every program imports: contract, errors, settings, ...
    worker/ producer/ model_store/      the programs and the packages they are built from
    view/ bridge/
    programs/                           what spans programs: the demo, the list of programs, the README tables

A module imports from its own layer or below, never above; among the packages of one layer any
arrow is allowed as long as no modules form a cycle.

The graph is read from the source with `ast` (not by importing, not import-linter): no new
dependency, and imports inside functions count as much as those at the top, since a deferred import
is still an arrow and deferring is how cycles get hidden. Imports under `if TYPE_CHECKING:` do not
count: they never run. An import names the most specific project module it reaches (`from view
import overlay` is an arrow to view.overlay); a package's `__init__` counts only where it is itself
the target. Run against another checkout: `python -m pytest --noconftest tests/test_layers.py` with
this file copied into that checkout's tests/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (("linewatch",), ("worker", "producer", "model_store", "view", "bridge"), ("programs",))
PACKAGES = tuple(p for layer in LAYERS for p in layer)
# Cycles known and left for now, so that this test guards against new ones (none today: keep an
# entry only with a reason, and the test below fails once it is gone, so that the entry goes too).
PENDING: set[frozenset[str]] = set()


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every .py file of the project's packages under `root`."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in `node` at any depth, except in the body of `if TYPE_CHECKING:`."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif isinstance(node, ast.If) and _type_checking_only(node):
        for statement in node.orelse:
            yield from _imports(statement)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _imports(child)


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that `name` (a.b.c) is or lies in; None outside the project."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        yield f"{base}.{alias.name}"  # a submodule if there is one; _target falls back to `base`


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports (itself excluded)."""
    modules = project_modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        arrows = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for name in _imported_names(node, module, path):
                target = _target(name, modules)
                if target is not None and target != module:
                    arrows.add(target)
        graph[module] = arrows
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Groups of two or more modules that all reach one another (Tarjan): each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each module that lies on one, each cycle once (start, ..., start)."""
    found: dict[frozenset[tuple[str, str]], list[str]] = {}
    for group in strongly_connected(graph):
        for start in sorted(group):
            cycle = _shortest_cycle(start, group, graph)
            found.setdefault(frozenset(zip(cycle, cycle[1:])), cycle)
    return sorted(found.values())


def _shortest_cycle(start: str, group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from `start` back to itself inside its group (breadth-first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is on no cycle")  # every member of a strongly connected group is


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every import of a module in a higher layer."""
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )


def test_no_import_cycle() -> None:
    found = [cycle for cycle in cycles(import_graph()) if frozenset(cycle) not in PENDING]
    assert not found, "import cycles (break each, e.g. move the shared part down):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found
    )


def test_pending_cycles_are_still_there() -> None:
    found = {frozenset(cycle) for cycle in cycles(import_graph())}
    gone = [sorted(cycle) for cycle in PENDING - found]
    assert not gone, f"no longer a cycle, remove it from PENDING: {gone}"


def test_imports_point_down_the_layers() -> None:
    found = upward_arrows(import_graph())
    assert not found, "imports of a higher layer (linewatch/ < programs' packages < programs/):\n" + "\n".join(found)


def test_the_graph_sees_what_it_must() -> None:
    """The checks above would pass on an empty graph: make sure they read this tree's imports."""
    graph = import_graph()
    assert {"linewatch.contract", "worker.app", "programs.demo"} <= set(graph)
    assert "linewatch.contract" in graph["worker.app"]  # a top-level import
    assert "view.server" in graph["programs.demo"]  # one inside a function


def test_cycles_and_upward_arrows_are_found() -> None:
    """The checks on a made-up graph: a cycle of three, a self-contained pair, an upward arrow."""
    graph = {
        "linewatch.a": {"linewatch.b"},
        "linewatch.b": {"worker.x"},
        "worker.x": {"linewatch.a", "programs.p"},
        "worker.y": {"worker.z"},
        "worker.z": {"worker.y"},
        "programs.p": {"worker.y"},
    }
    assert cycles(graph) == [["linewatch.a", "linewatch.b", "worker.x", "linewatch.a"],
                             ["worker.y", "worker.z", "worker.y"]]
    assert upward_arrows(graph) == ["linewatch.b -> worker.x", "worker.x -> programs.p"]


def test_the_graph_reads_every_kind_of_import(tmp_path: Path) -> None:
    """Top-level, in a function, relative, `from package import module`; TYPE_CHECKING left out."""
    files = {
        "linewatch/__init__.py": "",
        "linewatch/base.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from worker import app\n",
        "worker/__init__.py": "",
        "worker/app.py": "import linewatch.base\nfrom . import sinks\n",
        "worker/sinks.py": "def late():\n    from .app import main\n",
        "programs/__init__.py": "",
        "programs/demo.py": "from worker import app\nfrom linewatch.base import thing\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["linewatch.base"] == set()
    assert graph["worker.app"] == {"linewatch.base", "worker.sinks"}
    assert graph["worker.sinks"] == {"worker.app"}
    assert graph["programs.demo"] == {"worker.app", "linewatch.base"}
    assert cycles(graph) == [["worker.app", "worker.sinks", "worker.app"]]
