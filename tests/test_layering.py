"""Layering of the source tree, checked statically with `ast` (nothing is imported).

- No import cycle between packages. A node is a subpackage of `rsigma` (`rsigma.engine`), a top-level
  module of `rsigma` (`rsigma.fields`), or `workers` as a whole. Every absolute or relative import
  counts, including those inside functions, except those under `if TYPE_CHECKING:`.
- No class longer than `MAX_CLASS_LINES` lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rsigma", "workers")
MAX_CLASS_LINES = 400
MAX_CYCLES_PER_COMPONENT = 20

Site = tuple[str, int]  # (path relative to the root, line)
Graph = dict[str, dict[str, set[Site]]]  # node -> imported node -> the imports that make the edge


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_of(path: Path) -> list[str]:
    """The dotted module name of a file, as a list (`rsigma/engine/__init__.py` -> rsigma, engine)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def node_of(module: list[str]) -> str | None:
    """The graph node of a dotted module name; None for modules outside the tree (stdlib, third party)."""
    if not module or module[0] not in PACKAGES:
        return None
    if module[0] == "workers" or len(module) == 1:
        return module[0]
    top = ROOT / module[0] / module[1]
    if top.is_dir() or top.with_suffix(".py").is_file():
        return f"{module[0]}.{module[1]}"
    return module[0]  # a name from the package's `__init__` (`from rsigma import __version__`)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except under `if TYPE_CHECKING:` (its `else:` counts)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def imported_modules(statement: ast.Import | ast.ImportFrom, path: Path) -> Iterator[list[str]]:
    """The modules an import statement names; for `from x import y`, `x.y` (y may be a submodule)."""
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            yield alias.name.split(".")
        return
    if statement.level:
        package = module_of(path)
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - (statement.level - 1)]
    else:
        base = []
    base = base + (statement.module.split(".") if statement.module else [])
    for alias in statement.names:
        yield base if alias.name == "*" else [*base, alias.name]


def import_graph() -> Graph:
    graph: Graph = defaultdict(lambda: defaultdict(set))
    for path in source_files():
        source = node_of(module_of(path))
        assert source is not None
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for statement in imports(tree):
            for module in imported_modules(statement, path):
                target = node_of(module)
                if target is not None and target != source:
                    graph[source][target].add((str(path.relative_to(ROOT)), statement.lineno))
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components in no particular order, nodes sorted."""
    nodes = sorted(set(graph) | {t for targets in graph.values() for t in targets})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def simple_cycles(graph: Graph, component: list[str]) -> list[list[str]]:
    """The elementary cycles inside one component, each starting at its smallest node (capped)."""
    members = set(component)
    cycles: list[list[str]] = []

    def walk(start: str, path: list[str]) -> None:
        for succ in sorted(graph.get(path[-1], ())):
            if len(cycles) >= MAX_CYCLES_PER_COMPONENT:
                return
            if succ == start:
                cycles.append([*path, start])
            elif succ in members and succ > start and succ not in path:
                walk(start, [*path, succ])

    for start in component:
        walk(start, [start])
    return cycles


def describe(graph: Graph, components: list[list[str]]) -> str:
    lines = []
    for component in sorted(components):
        lines.append(f"cycle among {', '.join(component)}:")
        for cycle in simple_cycles(graph, component):
            lines.append("  " + " -> ".join(cycle))
            for a, b in zip(cycle, cycle[1:], strict=False):
                sites = ", ".join(f"{path}:{line}" for path, line in sorted(graph[a][b]))
                lines.append(f"    {a} -> {b}: {sites}")
    return "\n".join(lines)


def test_no_import_cycle_between_packages():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "package-level import cycles:\n" + describe(graph, cycles)


def test_no_class_longer_than_the_limit():
    offenders = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS_LINES:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not offenders, f"classes over {MAX_CLASS_LINES} lines:\n" + "\n".join(offenders)


def test_the_checker_sees_a_cycle_and_skips_type_checking_imports():
    """The helpers on a made-up graph: a three-node cycle and a two-node one, and nothing else."""
    graph: Graph = defaultdict(lambda: defaultdict(set))
    for a, b in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("f", "a")]:
        graph[a][b].add(("x.py", 1))
    assert sorted(c for c in strongly_connected(graph) if len(c) > 1) == [["a", "b", "c"], ["d", "e"]]
    assert simple_cycles(graph, ["a", "b", "c"]) == [["a", "b", "c", "a"]]
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import rsigma.daemon\nelse:\n    import rsigma.nats\n"
        "def f():\n    from rsigma import fields\n"
    )
    path = ROOT / "rsigma" / "engine" / "x.py"
    names = [".".join(m) for s in imports(tree) for m in imported_modules(s, path)]
    assert sorted(names) == ["rsigma.fields", "rsigma.nats", "typing.TYPE_CHECKING"]
