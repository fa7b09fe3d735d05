"""The tree's structure: no import cycles, and functions short enough to hold in one's head.

Pure Python: the source is parsed with `ast`; nothing here imports TensorFlow, Keras or the
package itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("keras_alexnet", "benchmarks")  # whose modules must not import each other in a loop
FUNCTION_DIRS = ("keras_alexnet", "benchmarks", "scripts")

# Issue 31's rule: no function over MAX_LINES lines, at most MAX_LONG over LONG_LINES.
MAX_LINES = 80
LONG_LINES = 60
MAX_LONG = 5


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES (a package is its __init__)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in `node`, deferred ones in functions included, except those
    under `if TYPE_CHECKING:` (never run, so never part of a cycle)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for statement in node.orelse:
            yield from _import_nodes(statement)
    else:
        for child in ast.iter_child_nodes(node):
            yield from _import_nodes(child)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
              known: set[str]) -> Iterator[str]:
    """The modules of `known` an import statement loads: `from pkg import name` is the
    submodule pkg.name where there is one, else pkg itself."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known:
                yield alias.name
        return
    base = node.module or ""
    if node.level:  # relative: from the module's package, `level - 1` packages up
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([base] if base else [])])
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            yield f"{base}.{alias.name}"
        elif base in known:
            yield base


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: line of the first such import} over PACKAGES' modules.

    A package's __init__ importing its own submodules is left out: importing a submodule runs
    its package's __init__ first, which is how packages work, not a cycle.
    """
    files = _module_files()
    known = set(files)
    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        edges = graph.setdefault(module, {})
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _imported(module, is_package, node, known):
                if target == module or (is_package and target.startswith(module + ".")):
                    continue
                edges.setdefault(target, node.lineno)
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Cycles (lists of modules, the first repeated at the end) that between them cover every
    strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for component in sorted(components):
        uncovered = list(component)
        while uncovered:  # cycles until each module of the component is on one
            cycle = _shortest_cycle(graph, uncovered[0], set(component))
            cycles.append(cycle)
            uncovered = [m for m in uncovered if m not in cycle]
    return cycles


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, members: set[str]
                    ) -> list[str]:
    """A shortest cycle from `start` back to it through `members` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    return [*paths[v], start]
                if w in members and w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(members)}")


def _describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    files = _module_files()
    steps = [f"{a} ({files[a].relative_to(ROOT)}:{graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join([*steps, cycle[-1]])


def test_no_import_cycles():
    """No module of the package or the benchmarks imports itself through others, deferred
    imports inside functions included (they only hide a cycle; issue 31)."""
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n  " + "\n  ".join(_describe(graph, c) for c in cycles)


def test_import_graph_sees_deferred_and_submodule_imports():
    """The graph has the edges the cycle test relies on (so a clean result means something)."""
    graph = import_graph()
    # `from keras_alexnet import data` inside a function resolves to the subpackage.
    assert any("keras_alexnet.data" in edges for m, edges in graph.items()
               if not m.startswith("keras_alexnet.data"))
    assert "keras_alexnet.config" in graph["keras_alexnet.model"]
    assert "benchmarks.measure" in graph["benchmarks.run"]
    # The package's lazy-export __init__ importing its submodules is not an edge.
    assert not [m for m in graph["keras_alexnet"] if m.startswith("keras_alexnet.")]


def test_find_cycles_reports_each_cycle():
    graph = {"a": {"b": 1}, "b": {"a": 2, "c": 3}, "c": {}, "d": {"e": 1}, "e": {"f": 1},
             "f": {"d": 1}}
    assert find_cycles(graph) == [["a", "b", "a"], ["d", "e", "f", "d"]]
    assert find_cycles({"a": {"b": 1}, "b": {}}) == []


def _functions() -> Iterator[tuple[int, str]]:
    """(lines, "file: name") for every function and method, nested ones included."""
    for directory in FUNCTION_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield (node.end_lineno - node.lineno + 1,
                           f"{path.relative_to(ROOT)}: {node.name}")


def test_functions_are_short():
    """HOUSE RULE (issue 31): no function over 80 lines (`def` to its last line), at most five
    over 60. A long function becomes a short story of named steps; raise the limits only with
    a reason in this docstring."""
    lengths = sorted(_functions(), reverse=True)
    too_long = [f"{n} lines  {name}" for n, name in lengths if n > MAX_LINES]
    long = [f"{n} lines  {name}" for n, name in lengths if n > LONG_LINES]
    assert not too_long, f"functions over {MAX_LINES} lines:\n  " + "\n  ".join(too_long)
    assert len(long) <= MAX_LONG, (f"{len(long)} functions over {LONG_LINES} lines, at most "
                                   f"{MAX_LONG} allowed:\n  " + "\n  ".join(long))
