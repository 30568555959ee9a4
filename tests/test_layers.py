"""The import graph keeps its layers (docs/design.md, "Layers"): read with ``ast`` alone, never by importing.

Layers, each importing only those below it::

    bbans_cli (cli/)  ->  bbans_models (models/)  ->  bbans.api  ->  bbans.container  ->  bbans.bitsback
        ->  bbans.codecs  ->  bbans.errors          (bbans.idx, the MNIST IDX format: errors only)

``bbans`` never imports torch, nor ``bbans_models`` or ``bbans_cli`` (models plug in through the ``bbans.models``
entry-point group). Every import counts: module level, inside functions, and literal ``importlib.import_module``
calls; imports under ``if TYPE_CHECKING:`` count for the layering but not for cycles, since they never run.
A failure names each offending edge as ``importer -> imported (file:line)``.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bbans": ROOT / "bbans", "bbans_models": ROOT / "models", "bbans_cli": ROOT / "cli"}
FOLDER_NAMES = {"models": "bbans_models", "cli": "bbans_cli"}  # folder names, which are not installed names

# Internal layers each layer may import (itself included where listed); None: any bbans layer.
ALLOWED = {
    "bbans.errors": set(),
    "bbans.idx": {"bbans.errors"},
    "bbans.codecs": {"bbans.codecs", "bbans.errors"},
    "bbans.bitsback": {"bbans.bitsback", "bbans.codecs", "bbans.errors"},
    "bbans.container": {"bbans.container", "bbans.bitsback", "bbans.codecs", "bbans.errors", "bbans.idx"},
    "bbans.api": {"bbans.container", "bbans.bitsback", "bbans.codecs", "bbans.errors", "bbans.idx"},
    "bbans": None,  # bbans/__init__.py: the public names, re-exported from any layer of bbans
}
BBANS_THIRD_PARTY = {"numpy", "constriction"}  # all bbans may import besides the standard library and itself


@dataclass(frozen=True)
class Edge:
    src: str  # importing module, e.g. "bbans.codecs.basic"
    dst: str  # imported module (internal: the longest existing module prefix), or a top-level external name
    where: str  # "path:line"
    type_only: bool  # under ``if TYPE_CHECKING:``
    optional: bool = False  # in the body of a ``try:`` that catches ImportError (an optional dependency)

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} ({self.where})"


def _discover() -> tuple[dict[str, Path], dict[str, bool]]:
    """Every module of the three packages: {module name: file}, {module name: is a package}."""
    files, is_pkg = {}, {}
    for top, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if "__pycache__" in rel.parts:
                continue
            parts = [top, *rel.parts]
            package = parts[-1] == "__init__"
            if package:
                parts = parts[:-1]
            files[".".join(parts)] = path
            is_pkg[".".join(parts)] = package
    return files, is_pkg


FILES, IS_PACKAGE = _discover()


def _parse(path: Path):
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        return exc


TREES = {name: _parse(path) for name, path in FILES.items()}


def _internal(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _resolve(name: str) -> str:
    """An internal dotted name to the longest prefix that is a module (``bbans.codecs.basic.Codec`` ->
    ``bbans.codecs.basic``); an internal name with no such module stays as it is; an external one becomes its
    top-level name."""
    if not _internal(name):
        return name.split(".")[0]
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in FILES:
            return ".".join(parts[:i])
    return name


def _targets(module: str, node: ast.AST) -> list[str]:
    """The modules an import statement (or a literal import_module call) of ``module`` imports."""
    if isinstance(node, ast.Import):
        return [_resolve(a.name) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = module.split(".") if IS_PACKAGE[module] else module.split(".")[:-1]
            base_parts = package[: len(package) - (node.level - 1)]
            base = ".".join(base_parts + (node.module.split(".") if node.module else []))
        else:
            base = node.module
        out = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append(sub if alias.name != "*" and sub in FILES else _resolve(base))
        return out
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        f = node.func
        fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
        if fname in ("import_module", "__import__") and not node.args[0].value.startswith("."):
            return [_resolve(node.args[0].value)]
    return []


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for h in node.handlers:
        for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
            names.add(getattr(t, "id", getattr(t, "attr", None)))
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _edges_of(module: str, tree: ast.AST) -> list[Edge]:
    rel = FILES[module].relative_to(ROOT).as_posix()
    out: list[Edge] = []

    def visit(node: ast.AST, type_only: bool, optional: bool) -> None:
        for dst in _targets(module, node):
            out.append(Edge(module, dst, f"{rel}:{node.lineno}", type_only, optional))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True, optional)
            for child in node.orelse:
                visit(child, type_only, optional)
            return
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.body:
                visit(child, type_only, True)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, type_only, optional)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, type_only, optional)

    visit(tree, False, False)
    return out


EDGES = [e for m, t in TREES.items() if isinstance(t, ast.AST) for e in _edges_of(m, t)]


def _layer(module: str) -> str:
    """bbans.codecs.basic -> bbans.codecs; bbans.api -> bbans.api; bbans -> bbans; bbans_models.x -> bbans_models."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bbans" else parts[0]


def _fail(what: str, edges) -> None:
    edges = sorted(set(edges), key=str)
    if edges:
        pytest.fail(f"{what}:\n  " + "\n  ".join(map(str, edges)), pytrace=False)


# ------------------------------------------------------------------------------------------------------ tests


def test_the_graph_covers_the_packages():
    for layer in ("bbans.codecs", "bbans.bitsback", "bbans.container"):
        assert any(_layer(m) == layer for m in FILES), f"no modules found for {layer}"
    assert "bbans_models" in FILES and "bbans_cli" in FILES
    assert any(e.src.startswith("bbans.bitsback.") and e.dst.startswith("bbans.codecs.") for e in EDGES)


def test_every_module_parses():
    bad = [f"{FILES[m].relative_to(ROOT)}: {t}" for m, t in TREES.items() if not isinstance(t, ast.AST)]
    if bad:
        pytest.fail("modules that do not parse (the other checks skip them):\n  " + "\n  ".join(bad), pytrace=False)


def test_every_bbans_module_has_a_layer():
    unknown = sorted(m for m in FILES if m.split(".")[0] == "bbans" and _layer(m) not in ALLOWED)
    assert not unknown, (f"bbans modules outside every known layer: {unknown}; place them in docs/design.md "
                         "('Layers') and in ALLOWED here")


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_bbans_layer_imports_only_downward(layer):
    allowed = ALLOWED[layer]
    bad = [e for e in EDGES if _layer(e.src) == layer and _internal(e.dst) and e.src != e.dst
           and not (e.dst.split(".")[0] == "bbans" and (allowed is None or _layer(e.dst) in allowed))]
    _fail(f"{layer} imports outside {sorted(allowed) if allowed is not None else 'bbans'}", bad)


def test_bbans_imports_no_torch_and_only_numpy_constriction_and_the_standard_library():
    """Optional packages (imported under ``try: ... except ImportError``, e.g. the ``bench`` extra's reference
    codecs) are allowed; torch never is."""
    outside = [e for e in EDGES if e.src.split(".")[0] == "bbans" and not _internal(e.dst)
               and e.dst not in BBANS_THIRD_PARTY and e.dst not in sys.stdlib_module_names]
    _fail("bbans imports torch (coding must not depend on it; models/ does the torch work)",
          [e for e in outside if e.dst == "torch"])
    _fail(f"bbans requires packages outside the standard library, {sorted(BBANS_THIRD_PARTY)} and itself "
          "(an optional one must be imported under try/except ImportError)", [e for e in outside if not e.optional])


def test_bbans_finds_models_through_entry_points_only():
    bad = [e for e in EDGES if e.src.split(".")[0] == "bbans" and e.dst.split(".")[0] in ("bbans_models", "bbans_cli")]
    _fail("bbans imports bbans_models or bbans_cli by name (models plug in through the 'bbans.models' "
          "entry-point group)", bad)


def test_models_never_import_the_cli():
    _fail("bbans_models imports bbans_cli",
          [e for e in EDGES if e.src.split(".")[0] == "bbans_models" and e.dst.split(".")[0] == "bbans_cli"])


def test_imports_use_installed_names_not_folder_names():
    bad = [e for e in EDGES if not _internal(e.dst) and e.dst in FOLDER_NAMES]
    _fail(f"imports by folder name instead of the installed name {FOLDER_NAMES}", bad)


def _cycles(nodes: set[str], edges: list[Edge]) -> list[list[Edge]]:
    """One concrete cycle (as its edges) per strongly connected component of more than one module."""
    graph: dict[str, dict[str, Edge]] = {n: {} for n in nodes}
    for e in edges:
        if e.src in nodes and e.dst in nodes and e.src != e.dst and not e.type_only:
            graph[e.src].setdefault(e.dst, e)
    index, low, stack, on_stack, comps, counter = {}, {}, [], set(), [], [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graphs have a few dozen nodes, recursion is fine
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(nodes):
        if v not in index:
            strongconnect(v)
    out = []
    for comp in comps:  # a shortest path back to the start, by breadth-first search inside the component
        start = min(comp)
        prev: dict[str, Edge] = {}
        frontier, seen = [start], {start}
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w, e in sorted(graph[v].items()):
                    if w in comp and (w not in seen or w == start) and w not in prev:
                        prev[w] = e
                        seen.add(w)
                        nxt.append(w)
            frontier = nxt
        path, v = [], start
        while True:
            e = prev[v]
            path.append(e)
            v = e.src
            if v == start:
                break
        out.append(path[::-1])
    return out


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycles(package):
    nodes = {m for m in FILES if m.split(".")[0] == package}
    cycles = _cycles(nodes, EDGES)
    if cycles:
        text = "\n  ".join(" -> ".join([c[0].src] + [f"{e.dst} ({e.where})" for e in c]) for c in cycles)
        pytest.fail(f"import cycles in {package}:\n  {text}", pytrace=False)
