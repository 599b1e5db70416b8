"""Declared hot parameters: what a callback accepts in ``hotcb cb set``.

A callback declares its hot parameters in a ``hot_params`` class attribute, a tuple of
:class:`HotParam` (name, type, default, one-line help, optional range or choices). Then
a ``set`` is converted and checked against the declaration twice: by the CLI before it
queues anything (from the run's ``hotcb.state.json``, where the run writes every loaded
callback's declaration, so the CLI never imports the callback), and by the run before it
calls ``set_params`` (a command written straight to the file). Both say the same thing:
an unknown name gets ``did you mean 'every'?``, a bad value what was expected. A callback
without ``hot_params`` is not checked (its ``set_params`` decides, as before).

This module imports nothing heavy: the CLI uses it.

Example:
    >>> class PrintLoss:
    ...     hot_params = (HotParam("every", int, 10, "print every N steps", ge=1),)
    >>> check_values("print_loss", PrintLoss.hot_params, {"every": 5.0})
    {'every': 5}
    >>> check_values("print_loss", PrintLoss.hot_params, {"evry": 5})
    Traceback (most recent call last):
    ...
    hotcb.hotparams.ParamError: print_loss has no hot parameter 'evry'; did you mean 'every'? (it has: every)
    >>> check_values("print_loss", (HotParam("path", str, aliases=("out_path",)),),
    ...              {"out_path": "m.jsonl"})
    {'path': 'm.jsonl'}
    >>> check_values("print_loss", PrintLoss.hot_params, {"every": -3})
    Traceback (most recent call last):
    ...
    hotcb.hotparams.ParamError: print_loss: every must be an integer >= 1, got -3
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PARAM_TYPES",
    "HotParam",
    "ParamError",
    "check_values",
    "declared_params",
    "is_reserved",
]

#: The types a hot parameter can have (``int``, ``float``, ... may be given as the Python
#: types; ``list[str]`` as written).
PARAM_TYPES = ("int", "float", "bool", "str", "list[str]", "list", "dict", "any")

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", list: "list", dict: "dict"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ParamError(ValueError):
    """A value (or name) that a callback's declaration does not accept; the message says
    what it expects."""


def is_reserved(name: str) -> bool:
    """True for hotcb's own keys (``_timeout_``, ``_rank_zero_only_``): checked by hotcb,
    never by a declaration."""
    return len(name) > 2 and name.startswith("_") and name.endswith("_")


@dataclass(frozen=True)
class HotParam:
    """One hot parameter of a callback.

    Args:
        name: the keyword ``set_params`` takes.
        type: one of :data:`PARAM_TYPES` (``int``, ``float``, ``bool``, ``str``, ``list``
            and ``dict`` may be the Python types).
        default: the value the callback starts with when no one sets it.
        help: one line: what it does.
        ge, gt, le, lt: bounds of a number (``>=``, ``>``, ``<=``, ``<``).
        choices: the only values it accepts.
        nonempty: a ``str`` or list must not be empty.
        nullable: ``null`` (None) is accepted too.
        aliases: other names it is set by (the reference project's, e.g. ``out_path``
            for ``path``); a value given by an alias is checked and passed by ``name``.

    >>> HotParam("every", int, 100, "beat every N steps", ge=1).check(5)
    5
    >>> HotParam("action", str, "log", choices=("log", "stop")).expects()
    'one of log, stop'
    """

    name: str
    type: Any = "any"
    default: Any = None
    help: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    nonempty: bool = False
    nullable: bool = False
    aliases: tuple[str, ...] = ()
    _bounds: tuple[tuple[str, float], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise TypeError(f"HotParam name must be a Python identifier, got {self.name!r}")
        kind = _TYPE_NAMES.get(self.type, self.type)
        if kind not in PARAM_TYPES:
            raise TypeError(
                f"HotParam {self.name!r}: type must be one of {', '.join(PARAM_TYPES)}, "
                f"got {self.type!r}"
            )
        object.__setattr__(self, "type", kind)
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        bounds = tuple(
            (op, float(v))
            for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if v is not None
        )
        object.__setattr__(self, "_bounds", bounds)

    def expects(self) -> str:
        """What it accepts, in words: ``an integer >= 1``."""
        if self.choices is not None:
            text = "one of " + ", ".join(
                c if isinstance(c, str) else _plain(c) for c in self.choices
            )
        else:
            text = {
                "int": "an integer",
                "float": "a finite number",
                "bool": "true or false",
                "str": "a non-empty string" if self.nonempty else "a string",
                "list[str]": "a non-empty list of strings"
                if self.nonempty
                else "a list of strings",
                "list": "a non-empty list" if self.nonempty else "a list",
                "dict": "a mapping",
                "any": "any value",
            }[self.type]
            text += "".join(f" {op} {bound:g}" for op, bound in self._bounds)
        return text + (" (or null)" if self.nullable else "")

    def check(self, value: Any) -> Any:
        """``value`` converted to the declared type (``5.0`` -> ``5`` for an int, ``5`` ->
        ``5.0`` for a float, a string -> a one-element list for ``list[str]``); a
        :class:`ParamError` saying what is expected if it does not fit."""
        if value is None and self.nullable:
            return None
        converted = _convert(self.type, value)
        if converted is _BAD or not self._fits(converted):
            raise ParamError(f"{self.name} must be {self.expects()}, got {_show(value)}")
        return converted

    def _fits(self, value: Any) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if self.nonempty and isinstance(value, (str, list)) and not value:
            return False
        return all(_COMPARE[op](value, bound) for op, bound in self._bounds)

    def to_dict(self) -> dict[str, Any]:
        """As written to ``hotcb.state.json`` (only the bounds and flags that are set)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "default": self.default}
        out["help"] = self.help
        for key in ("ge", "gt", "le", "lt", "choices"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "choices" else value
        for key in ("nonempty", "nullable"):
            if getattr(self, key):
                out[key] = True
        if self.aliases:
            out["aliases"] = list(self.aliases)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HotParam:
        """The inverse of :meth:`to_dict` (unknown keys, e.g. ``value``, are ignored)."""
        known = ("name", "type", "default", "help", "ge", "gt", "le", "lt", "choices")
        kwargs = {k: data[k] for k in known if k in data}
        return cls(
            **kwargs,
            nonempty=bool(data.get("nonempty")),
            nullable=bool(data.get("nullable")),
            aliases=tuple(data.get("aliases") or ()),
        )


_BAD = object()
_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def _convert(kind: str, value: Any) -> Any:
    """``value`` as ``kind``, or ``_BAD``."""
    if kind == "any":
        return value
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD
    if isinstance(value, bool):  # True is an int in Python, never here
        return _BAD
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
        return _BAD
    if kind == "float":
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return _BAD
    if kind == "str":
        return value if isinstance(value, str) else _BAD
    if kind == "list[str]":
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        return _BAD
    if kind == "list":
        return list(value) if isinstance(value, (list, tuple)) else _BAD
    return dict(value) if isinstance(value, Mapping) else _BAD  # dict


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _plain(value)


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def check_values(
    owner: str, declared: Sequence[HotParam], values: Mapping[str, Any]
) -> dict[str, Any]:
    """``values`` checked and converted against ``declared`` (the reserved keys pass
    unchanged); a :class:`ParamError` naming ``owner`` for an unknown name (with the
    closest declared one) or a value that does not fit."""
    by_name = {p.name: p for p in declared}
    by_alias = {alias: p for p in declared for alias in p.aliases}
    given: dict[str, str] = {}  # declared name -> the name it was given by
    out: dict[str, Any] = {}
    for name, value in values.items():
        if is_reserved(name):
            out[name] = value
            continue
        param = by_name.get(name) or by_alias.get(name)
        if param is None:
            import difflib

            close = difflib.get_close_matches(name, [*by_name, *by_alias], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            has = ", ".join(by_name) or "none"
            raise ParamError(f"{owner} has no hot parameter {name!r}{hint} (it has: {has})")
        if param.name in out:
            alias = name if name != param.name else given[param.name]
            raise ParamError(f"{owner}: {alias} is another name of {param.name}: give one of them")
        given[param.name] = name
        try:
            out[param.name] = param.check(value)
        except ParamError as exc:
            raise ParamError(f"{owner}: {exc}") from None
    return out


def declared_params(obj: Any) -> tuple[HotParam, ...] | None:
    """``obj.hot_params`` (a class or an instance) as a tuple, or None if it declares
    none; a ``TypeError`` for a declaration that is not a sequence of distinct
    :class:`HotParam`."""
    declared = getattr(obj, "hot_params", None)
    if declared is None:
        return None
    owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    if not isinstance(declared, (tuple, list)) or not all(
        isinstance(p, HotParam) for p in declared
    ):
        raise TypeError(
            f"{owner}.hot_params must be a tuple of hotcb.hotparams.HotParam, got {declared!r}"
        )
    names = [p.name for p in declared]
    if len(set(names)) != len(names):
        raise TypeError(f"{owner}.hot_params declares a name twice: {', '.join(names)}")
    return tuple(declared)
