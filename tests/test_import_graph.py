"""No import cycles among hotcb's modules.

The graph is built from the source (an AST walk, nothing is imported) with one edge per
**module-level** import of a hotcb module, *including* imports under ``if TYPE_CHECKING:``:
a type-only import is still a dependency of the design (mypy follows it, and a reader
must know the other module to read this one), so a cycle through one is the same tangle.
Imports inside a function body are left out: they run when the function is called, after
every module is loaded, which is how hotcb defers torch, Hydra and the few deliberate
back-references (``HotKernel.from_config`` reaching :mod:`hotcb.launch`).

An import names its target module: ``from hotcb.a import b`` is an edge to ``hotcb.a.b``
when that is a module, else to ``hotcb.a``. Parent packages (``hotcb/__init__.py``) are not
implied by importing a submodule, as in import-linter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hotcb"


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_level(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports at module level, also inside ``if`` / ``try`` blocks (TYPE_CHECKING too)."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                todo.extend(handler.body)
        elif isinstance(node, (ast.With,)):
            todo.extend(node.body)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``module -> the hotcb modules it imports at module level``."""
    files = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in _module_level(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            for target in targets:
                while target and target not in files:  # `import hotcb.a.b` of a name
                    target = target.rpartition(".")[0]
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (``[a, b, ..., a]``) if there is any, else None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _check_the_walk(tmp_path: Path) -> None:
    """The walk sees what it should (so an empty answer means something)."""
    graph = import_graph()
    assert "hotcb.ops" in graph["hotcb.kernel"]
    assert "hotcb.modules.cb.controller" in graph["hotcb.modules.cb.module"]
    assert "hotcb.interrupts" in graph["hotcb.modules.cb.controller"]  # from hotcb import x
    pkg = tmp_path / "hotcb"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from hotcb.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hotcb import c\n"
    )
    (pkg / "c.py").write_text("import hotcb.a\n\ndef f():\n    from hotcb import c\n")
    assert find_cycle(import_graph(pkg)) == ["hotcb.a", "hotcb.sub.b", "hotcb.c", "hotcb.a"]
    (pkg / "c.py").write_text("def f():\n    import hotcb.a\n")  # inside a function: no edge
    assert find_cycle(import_graph(pkg)) is None


def test_hotcb_has_no_import_cycles(tmp_path: Path) -> None:
    _check_the_walk(tmp_path)
    cycle = find_cycle(import_graph())
    if cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle))
