"""hotcb's errors: one base, :class:`HotcbError`, with a message and where the problem is.

A message says what is wrong and what to do; the location is kept apart from it, in
optional fields that code can read (the ledger stores them, ``hotcb log`` and the CLI show
them, Hydra errors nest them):

==========  ===================================================================
``path``    the file (``hotcb.commands.jsonl``, a ``.py`` callback, a YAML file)
``line``    the 1-based line in that file
``key``     the config or command key (``hotcb.callbacks.heartbeat``, ``params.every``)
``target``  the load target (``package.module.Class``, ``path/to/file.py:Class``)
==========  ===================================================================

``str(error)`` puts them in front of the message, always in the same form:
``<path> line <line>, <key>, target <target>: <message>`` (absent parts left out).

This module imports nothing from hotcb (everything else may import it), and neither
torch nor Hydra.

Example:
    >>> error = HotcbError("not valid JSON: Expecting value at column 1", path="run/cmds", line=3)
    >>> str(error)
    'run/cmds line 3: not valid JSON: Expecting value at column 1'
    >>> error.location
    {'path': 'run/cmds', 'line': 3}
    >>> str(HotcbError("missing _target_").located(key="hotcb.callbacks.hb"))
    'hotcb.callbacks.hb: missing _target_'
    >>> format_error("missing _target_", {"key": "hotcb.callbacks.hb"})
    'hotcb.callbacks.hb: missing _target_'
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["LOCATION_FIELDS", "HotcbError", "format_error", "format_location"]

#: The optional location fields of a :class:`HotcbError`, in the order they are shown.
LOCATION_FIELDS: tuple[str, ...] = ("path", "line", "key", "target")

_E = TypeVar("_E", bound="HotcbError")


def format_location(location: Mapping[str, Any] | None) -> str:
    """The location fields as shown in front of a message (``""`` when there are none).

    >>> format_location({"path": "viz.py", "line": 12, "target": "viz.py:Viz"})
    'viz.py line 12, target viz.py:Viz'
    >>> format_location({"line": 4}), format_location(None)
    ('line 4', '')
    """
    if not location:
        return ""
    path, line = location.get("path"), location.get("line")
    parts: list[str] = []
    if path is not None:
        parts.append(f"{path} line {line}" if line is not None else str(path))
    elif line is not None:
        parts.append(f"line {line}")
    if location.get("key") is not None:
        parts.append(str(location["key"]))
    if location.get("target") is not None:
        parts.append(f"target {location['target']}")
    return ", ".join(parts)


def format_error(message: str, location: Mapping[str, Any] | None = None) -> str:
    """``<location>: <message>``, the one way hotcb shows an error with its location
    (``str()`` of a :class:`HotcbError`, a ledger entry's ``error`` and ``location``).

    >>> format_error("file not found", {"path": "/w/viz.py"})
    '/w/viz.py: file not found'
    >>> format_error("boom")
    'boom'
    """
    where = format_location(location)
    return f"{where}: {message}" if where else message


def _rebuild(cls: type[HotcbError], message: str, location: dict[str, Any]) -> HotcbError:
    """Unpickle a :class:`HotcbError` (with its location fields)."""
    return cls(message, **location)


class HotcbError(Exception):
    """The base of hotcb's errors: a message for a person and where the problem is.

    ``message`` says what is wrong and what to do; ``path``, ``line``, ``key`` and
    ``target`` (each optional) say where, and ``str()`` shows both (see the module
    docstring). Catch ``HotcbError`` to handle any error hotcb raises on purpose.
    """

    path: str | None
    line: int | None
    key: str | None
    target: str | None

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
        target: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.key = key
        self.target = target

    @classmethod
    def from_error(cls: type[_E], error: HotcbError) -> _E:
        """``error``'s message and location as this class (e.g. a
        :class:`~hotcb.hydra.deltas.DeltaError` reported as an ``ExportError``).

        >>> class Outer(HotcbError): ...
        >>> str(Outer.from_error(HotcbError("bad", path="x.yaml", line=2)))
        'x.yaml line 2: bad'
        """
        return cls(error.message, **error.location)

    @property
    def location(self) -> dict[str, Any]:
        """The location fields that are set, as plain JSON values (what the ledger stores).

        >>> HotcbError("bad", key="params.every").location
        {'key': 'params.every'}
        """
        return {
            name: value for name in LOCATION_FIELDS if (value := getattr(self, name)) is not None
        }

    def located(
        self: _E,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
        target: str | None = None,
    ) -> _E:
        """A copy that also says where: fields already set are kept, except ``key``, which
        nests (``key="hotcb.callbacks.hb"`` on an error at ``params.every`` gives
        ``hotcb.callbacks.hb.params.every``).

        >>> inner = HotcbError("must be an integer", key="every")
        >>> inner.located(path="conf.yaml", key="hotcb.callbacks.hb").location
        {'path': 'conf.yaml', 'key': 'hotcb.callbacks.hb.every'}
        """
        new = copy.copy(self)
        if new.path is None and path is not None:
            new.path = os.fspath(path)
        if new.line is None:
            new.line = line
        if key is not None:
            new.key = f"{key}.{new.key}" if new.key else key
        if new.target is None:
            new.target = target
        return new

    def __str__(self) -> str:
        return format_error(self.message, self.location)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.location), self.__dict__)
