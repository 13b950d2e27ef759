"""The package's module-level import graph: no new cycles, and a vocabulary module that imports nothing heavy.

Only imports that run when a module is imported count: statements at module level, including those under a
module-level ``if``/``try``/``with``, but not those inside functions or classes, nor under ``if TYPE_CHECKING:``
(never executed). ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "fourkagent"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

KNOWN_CYCLES: set[frozenset[str]] = set()
"""Module-level cycles that existed when this test was written (each a set of modules forming one strongly
connected component); every one must go, and no other may appear."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    out: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                out += _top_level_imports(node.body)
            out += _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                out += _top_level_imports(block)
        elif isinstance(node, ast.With):
            out += _top_level_imports(node.body)
    return out


def _imported(module: str, path: Path, modules: set[str]) -> list[str]:
    """Absolute names of what ``module`` imports at module level (third-party ones included).

    ``from pkg import name`` gives ``pkg.name`` when that is one of ``modules``, else ``pkg``.
    """
    is_pkg = path.name == "__init__.py"
    names: list[str] = []
    for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
            continue
        base = node.module or ""
        if node.level:
            parts = module.split(".")
            anchor = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
            base = ".".join([*anchor, *([base] if base else [])])
        names += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    return names


def _graph() -> dict[str, set[str]]:
    """Module → the package's modules it imports at module level."""
    mods = _modules()
    return {name: {t for t in _imported(name, path, set(mods)) if t in mods and t != name}
            for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.add(frozenset(comp))
    return out


def test_graph_sees_the_package() -> None:
    graph = _graph()
    assert "fourkagent.vocabulary" in graph and "fourkagent.graph.builder" in graph
    assert "fourkagent.nodes.plan" in graph["fourkagent.graph.builder"] or any(
        m.startswith("fourkagent.nodes") for m in graph["fourkagent.graph.builder"])


def test_no_new_import_cycle() -> None:
    found = _cycles(_graph())
    new = sorted(sorted(c) for c in found - KNOWN_CYCLES)
    gone = sorted(sorted(c) for c in KNOWN_CYCLES - found)
    assert not new, f"new module-level import cycle(s): {new}"
    assert not gone, f"known cycle(s) no longer present, remove them from KNOWN_CYCLES: {gone}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert _cycles({"a": {"b"}, "b": set()}) == set()


def test_vocabulary_imports_nothing_third_party() -> None:
    path = ROOT / "vocabulary.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    every = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in every if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in every if isinstance(n, ast.ImportFrom) and not n.level]
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    assert all(n.split(".")[0] in allowed for n in names), names


def test_vocabulary_loads_no_heavy_module() -> None:
    code = "import sys, fourkagent.vocabulary; print(sorted({'numpy', 'torch', 'cv2'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
