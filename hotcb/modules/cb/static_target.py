"""Check a load target against the target rule without importing or running it.

``hotcb cb load`` refuses a bad target up front, but the CLI never imports the user's
module: that would run its code (and pull in torch). So this module finds the source the
way ``import`` would, without executing anything (:class:`importlib.machinery.PathFinder`
over the current directory and ``sys.path``; only top-level names go through
:func:`importlib.util.find_spec`, which imports nothing for them), parses it with
:mod:`ast`, and follows ``from x import Y`` re-exports, aliases and base classes a few
levels. The answer is a :class:`StaticVerdict`:

* ``ok``: a class that has ``handle`` and ``set_params`` (itself or a base class), a
  subclass of a Lightning ``Callback`` or an HF ``TrainerCallback`` (wrapped by the run, see
  :mod:`hotcb.modules.cb.foreign`), or a factory marked with ``@hot_factory`` (or listed in the run's ``allowed_factories``);
* ``refused``: provably not one (a plain ``def``, a module-level value, a module, a name
  in a built-in module, a class without ``set_params``), with the kernel's message;
* ``unknown``: the source cannot tell (a base class in a C extension, a name created at
  run time, a module not found from here); the run checks it when it applies the load.

Example:
    >>> check_module_target("timeit", "timeit").verdict
    'refused'
    >>> check_module_target("hotcb.modules.cb.callbacks.timing", "TimingCallback")
    StaticVerdict(verdict='ok', reason='')
    >>> check_module_target("io", "open").reason[:57]
    "target 'io.open' is a name in the built-in module '_io', "
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import os
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Literal

from hotcb.modules.cb.foreign import FOREIGN_BASES
from hotcb.modules.cb.loader import blocked_message, is_blocked_target, not_a_callback
from hotcb.modules.cb.protocol import PROTOCOL_METHODS

__all__ = ["StaticVerdict", "check_file_target", "check_module_target"]

#: How many re-exports / base classes deep the check follows before giving up.
MAX_DEPTH = 8
_METHODS = frozenset(PROTOCOL_METHODS)
_MARKER = "hot_factory"


@dataclass(frozen=True)
class StaticVerdict:
    """``ok``, ``refused`` (``reason`` is the refusal) or ``unknown`` (``reason`` says why)."""

    verdict: Literal["ok", "refused", "unknown"]
    reason: str = ""


@dataclass(frozen=True)
class _Thing:
    """What a name is bound to, as far as the source shows."""

    #: class, marked, function, value, module, native, blocked, missing, unknown
    kind: str
    #: for a refusal ("a function", "a float") or, for ``unknown``, why
    what: str
    #: class: the protocol methods it or its bases define; open: it may have more
    methods: frozenset[str] = frozenset()
    open: bool = False
    #: kind == "module": its dotted name
    module: str = ""
    #: class: it derives from a framework callback base (:data:`FOREIGN_BASES`)
    foreign: bool = False


@dataclass(frozen=True)
class _Module:
    """A module as found on disk, parsed but never run."""

    name: str
    tree: ast.Module | None  # None: no Python source (see ``native``)
    locations: list[str] = field(default_factory=list)  # a package's submodule dirs
    native: str = ""  # "the built-in module 'x'" (refuse) or "" / a reason (unknown)
    stdlib_native: bool = False


def check_module_target(
    path: str, symbol: str, *, allowed_factories: Collection[str] = ()
) -> StaticVerdict:
    """The target rule for ``kind: module`` targets, decided from source only."""
    dotted = f"{path}.{symbol}"
    if is_blocked_target(dotted) or is_blocked_target(path + "."):
        return StaticVerdict("refused", blocked_message(dotted))
    checker = _Checker()
    module = checker.module(path)
    if module is None:
        return StaticVerdict("unknown", f"module {path!r} was not found from here")
    thing = checker.lookup(module, symbol, 0)
    if thing.kind == "missing":
        return StaticVerdict(
            "refused", f"module {path!r} has no attribute {symbol!r}{_classes_hint(module.tree)}"
        )
    return _verdict(thing, dotted, allowed_factories)


def check_file_target(
    path: str | os.PathLike[str], symbol: str, *, allowed_factories: Collection[str] = ()
) -> StaticVerdict:
    """The target rule for ``kind: python_file`` targets: the file is parsed, never run.

    Raises ``SyntaxError`` / ``OSError`` / ``ValueError`` for a file that cannot be read
    or parsed.
    """
    file = Path(path)
    tree = ast.parse(file.read_bytes(), filename=str(file))
    thing = _Checker().lookup(_Module("", tree), symbol, 0)
    if thing.kind == "missing":
        return StaticVerdict(
            "refused", f"{file} defines no top-level {symbol!r}{_classes_hint(tree)}"
        )
    return _verdict(thing, f"{file}:{symbol}", allowed_factories)


def _classes_hint(tree: ast.Module | None) -> str:
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)] if tree else []
    return f" (classes there: {', '.join(classes[:12])})" if classes else ""


def _verdict(thing: _Thing, dotted: str, allowed: Collection[str]) -> StaticVerdict:
    if thing.kind == "blocked":
        return StaticVerdict("refused", blocked_message(thing.what))
    if thing.kind == "marked" or (
        thing.kind == "class" and (thing.methods >= _METHODS or thing.foreign)
    ):
        return StaticVerdict("ok")
    if dotted in allowed and thing.kind in ("function", "class", "unknown"):
        return StaticVerdict("ok")
    if thing.kind == "unknown" or (thing.kind == "class" and thing.open):
        reason = (
            thing.what
            if thing.kind == "unknown"
            else "it is a class whose methods come partly from code the source does not show "
            "(a compiled base class, a metaclass or a decorator)"
        )
        return StaticVerdict("unknown", f"cannot check {dotted!r} without running it: {reason}")
    return StaticVerdict("refused", not_a_callback(dotted, thing.what))


def _unknown(why: str) -> _Thing:
    return _Thing("unknown", why)


class _Checker:
    """Finds and parses modules (each once) and resolves names in them."""

    def __init__(self) -> None:
        self.search = [os.getcwd(), *(p or os.getcwd() for p in sys.path)]
        self.modules: dict[str, _Module | None] = {}

    # -- finding modules without importing them -------------------------------------

    def module(self, name: str) -> _Module | None:
        if name not in self.modules:
            self.modules[name] = self._load(name)
        return self.modules[name]

    def _spec(self, name: str) -> ModuleSpec | None:
        parts = name.split(".")
        try:
            spec = PathFinder.find_spec(parts[0], self.search) or importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            return None
        for i in range(1, len(parts)):
            if spec is None or not spec.submodule_search_locations:
                return None
            locations = list(spec.submodule_search_locations)
            spec = PathFinder.find_spec(".".join(parts[: i + 1]), locations)
        return spec

    def _load(self, name: str) -> _Module | None:
        spec = self._spec(name)
        if spec is None:
            return None
        locations = list(spec.submodule_search_locations or [])
        origin = spec.origin
        if origin in ("built-in", "frozen"):
            return _Module(name, None, native=f"the built-in module {name!r}", stdlib_native=True)
        if origin is None:  # a namespace package: only submodules
            return _Module(name, ast.Module(body=[], type_ignores=[]), locations)
        if not origin.endswith(".py"):
            stdlib = name.partition(".")[0] in sys.stdlib_module_names
            return _Module(name, None, native=f"the compiled module {name!r}", stdlib_native=stdlib)
        try:
            tree = ast.parse(Path(origin).read_bytes(), filename=origin)
        except (OSError, SyntaxError, ValueError):
            return _Module(name, None, native=f"{origin} cannot be parsed")
        return _Module(name, tree, locations)

    def submodule(self, module: _Module, name: str) -> _Module | None:
        if not module.locations or not module.name:
            return None
        return self.module(f"{module.name}.{name}")

    # -- resolving names --------------------------------------------------------------

    def lookup(self, module: _Module, name: str, depth: int) -> _Thing:
        """What ``name`` is bound to at the top level of ``module``."""
        if module.name and is_blocked_target(f"{module.name}.{name}"):
            return _Thing("blocked", f"{module.name}.{name}")
        if depth > MAX_DEPTH:
            return _unknown(f"{name!r} is re-exported more than {MAX_DEPTH} times")
        if module.tree is None:
            if module.stdlib_native:
                return _Thing("native", f"a name in {module.native}")
            return _unknown(f"{name!r} comes from {module.native or module.name + ' (no source)'}")
        things = [self._bound(module, stmt, name, depth) for stmt in _bindings(module.tree, name)]
        if not things:
            return self._unbound(module, name, depth)
        kinds = {t.kind for t in things}
        if len(things) == 1 or (len(kinds) == 1 and kinds <= {"function", "value", "module"}):
            return things[0]
        return _unknown(f"{name!r} is bound more than once in {module.name or 'the file'}")

    def _unbound(self, module: _Module, name: str, depth: int) -> _Thing:
        assert module.tree is not None
        for stmt in _top_level(module.tree):
            if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
                source = self._from_module(module, stmt)
                if source is None:
                    return _unknown(f"'from {stmt.module} import *' cannot be followed")
                thing = self.lookup(source, name, depth + 1)
                if thing.kind != "missing":
                    return thing
            elif isinstance(stmt, ast.FunctionDef) and stmt.name == "__getattr__":
                return _unknown(f"{module.name} computes its names at run time (__getattr__)")
        if _makes_names(module.tree):
            return _unknown(f"{module.name or 'the file'} creates names at run time (globals())")
        sub = self.submodule(module, name)
        if sub is not None:
            return _Thing("module", "a module", module=sub.name)
        return _Thing("missing", f"{module.name} has no {name!r}")

    def _from_module(self, module: _Module, stmt: ast.ImportFrom) -> _Module | None:
        if stmt.level:
            if not module.name:
                return None  # a file target runs as a fresh module: no package
            parts = module.name.split(".")
            base = parts if module.locations else parts[:-1]
            base = base[: len(base) - (stmt.level - 1)] if stmt.level > 1 else base
            if not base:
                return None
            name = ".".join([*base, stmt.module] if stmt.module else base)
        else:
            name = stmt.module or ""
        return self.module(name)

    def _bound(self, module: _Module, stmt: ast.stmt, name: str, depth: int) -> _Thing:
        if isinstance(stmt, ast.ClassDef):
            return self._class(module, stmt, depth)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_is_marker(d) for d in stmt.decorator_list):
                return _Thing("marked", "a marked factory")
            if stmt.decorator_list:
                return _unknown(f"{name!r} is a decorated function")
            return _Thing("function", "a function")
        if isinstance(stmt, ast.Import):
            alias = next(a for a in stmt.names if (a.asname or a.name.split(".")[0]) == name)
            target = alias.name if alias.asname else alias.name.split(".")[0]
            return _Thing("module", "a module", module=target)
        if isinstance(stmt, ast.ImportFrom):
            alias = next(a for a in stmt.names if (a.asname or a.name) == name)
            source = self._from_module(module, stmt)
            if source is None:
                return _unknown(f"module {stmt.module!r} was not found from here")
            thing = self.lookup(source, alias.name, depth + 1)
            if thing.kind == "missing":
                sub = self.submodule(source, alias.name)
                if sub is not None:
                    return _Thing("module", "a module", module=sub.name)
            return thing
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if all(isinstance(t, ast.Name) for t in targets):
                return self._value(module, stmt.value, depth)
        return _unknown(f"{name!r} is assigned at run time")

    def _value(self, module: _Module, value: ast.expr, depth: int) -> _Thing:
        """What an assigned expression is (``X = ...``)."""
        if isinstance(value, (ast.Name, ast.Attribute)):
            return self.reference(module, value, depth + 1)
        if isinstance(value, ast.Constant):
            return _Thing("value", _article(type(value.value).__name__))
        literals = {
            ast.List: "list",
            ast.Tuple: "tuple",
            ast.Dict: "dict",
            ast.Set: "set",
            ast.ListComp: "list",
            ast.DictComp: "dict",
            ast.SetComp: "set",
            ast.GeneratorExp: "generator",
            ast.JoinedStr: "str",
        }
        if type(value) in literals:
            return _Thing("value", _article(literals[type(value)]))
        if isinstance(value, ast.Lambda):
            return _Thing("function", "a lambda")
        if isinstance(value, ast.Call) and _is_marker(value.func):
            return _Thing("marked", "a marked factory")
        return _unknown("it is computed when the module runs")

    def reference(self, module: _Module, expr: ast.expr, depth: int) -> _Thing:
        """What a name or dotted attribute (``x``, ``mod.sub.Cls``) refers to."""
        if depth > MAX_DEPTH:
            return _unknown("the names are nested too deep to follow")
        if isinstance(expr, ast.Name):
            thing = self.lookup(module, expr.id, depth)
            if thing.kind == "missing" and hasattr(builtins, expr.id):
                return _builtin(getattr(builtins, expr.id), expr.id)
            return thing
        if isinstance(expr, ast.Attribute):
            owner = self.reference(module, expr.value, depth + 1)
            if owner.kind != "module":
                return _unknown(f"{ast.unparse(expr)} is an attribute of something not a module")
            source = self.module(owner.module)
            if source is None:
                return _unknown(f"module {owner.module!r} was not found from here")
            thing = self.lookup(source, expr.attr, depth + 1)
            sub = self.submodule(source, expr.attr) if thing.kind == "missing" else None
            return _Thing("module", "a module", module=sub.name) if sub else thing
        if isinstance(expr, ast.Subscript):  # Generic[T], Base[int]
            return self.reference(module, expr.value, depth)
        return _unknown(f"{ast.unparse(expr)} is computed at run time")

    def _class(self, module: _Module, node: ast.ClassDef, depth: int) -> _Thing:
        if any(_is_marker(d) for d in node.decorator_list):
            return _Thing("marked", "a marked factory class")
        methods = set(_class_members(node) & _METHODS)
        open_ = bool(node.decorator_list) or "__init_subclass__" in _class_members(node)
        open_ |= any(k.arg == "metaclass" for k in node.keywords)
        foreign = f"{module.name}.{node.name}" in FOREIGN_BASES
        if methods < _METHODS and not foreign:
            for base in node.bases:
                thing = self.reference(module, base, depth + 1)
                if thing.kind == "marked":
                    return thing
                if thing.kind == "class":
                    methods |= thing.methods
                    open_ |= thing.open
                    foreign |= thing.foreign
                else:
                    open_ = True  # a base the source cannot show (C extension, computed)
        missing = [m for m in PROTOCOL_METHODS if m not in methods]
        what = f"a class without {' and '.join(m + '()' for m in missing)}" if missing else ""
        return _Thing(
            "class", what or "a hot callback class", frozenset(methods), open_, "", foreign
        )


def _builtin(obj: object, name: str) -> _Thing:
    if isinstance(obj, type):
        methods = frozenset(m for m in _METHODS if inspect.getattr_static(obj, m, None))
        return _Thing("class", f"the built-in class {name}", methods)
    return _Thing("native", "a built-in function")


def _is_marker(expr: ast.expr) -> bool:
    """``@hot_factory`` or ``@anything.hot_factory``."""
    return (isinstance(expr, ast.Name) and expr.id == _MARKER) or (
        isinstance(expr, ast.Attribute) and expr.attr == _MARKER
    )


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}" if noun != "NoneType" else "None"


def _class_members(node: ast.ClassDef) -> set[str]:
    """Which of the protocol methods (and ``__init_subclass__``) the class body binds."""
    wanted = (*PROTOCOL_METHODS, "__init_subclass__")
    return {name for name in wanted if any(_binds(stmt, name) for stmt in node.body)}


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Statements that run at import time: the body, and the bodies of top-level
    ``if`` / ``try`` / ``with`` / loops (not of functions or classes)."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        stmt = todo.pop(0)
        out.append(stmt)
        if isinstance(stmt, ast.With):
            todo += stmt.body
        elif isinstance(stmt, (ast.If, ast.For, ast.While)):
            todo += stmt.body + stmt.orelse
        elif isinstance(stmt, ast.Try):
            todo += stmt.body + stmt.orelse + stmt.finalbody
            for handler in stmt.handlers:
                todo += handler.body
    return out


def _binds(stmt: ast.stmt, name: str) -> bool:
    if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return stmt.name == name
    if isinstance(stmt, ast.Import):
        return any((a.asname or a.name.split(".")[0]) == name for a in stmt.names)
    if isinstance(stmt, ast.ImportFrom):
        return any((a.asname or a.name) == name for a in stmt.names if a.name != "*")
    if isinstance(stmt, ast.Assign):
        return any(name in _names(t) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is not None and name in _names(stmt.target)
    if isinstance(stmt, (ast.AugAssign, ast.For)):
        return name in _names(stmt.target)
    if isinstance(stmt, ast.With):
        return any(name in _names(i.optional_vars) for i in stmt.items if i.optional_vars)
    return False


def _names(target: ast.expr) -> list[str]:
    """The names an assignment target binds (``x``, ``a, *b``; not ``x.attr``, ``x[i]``)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names(elt)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def _makes_names(tree: ast.Module) -> bool:
    """Whether the module may create top-level names the source does not spell out."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id in ("globals", "exec")
        for n in ast.walk(tree)
    )


def _bindings(tree: ast.Module, name: str) -> list[ast.stmt]:
    return [stmt for stmt in _top_level(tree) if _binds(stmt, name)]
