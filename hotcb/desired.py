"""The desired-state YAML file (``hotcb.yaml``): declare the callback set, hotcb converges.

::

    callbacks:
      timing:
        target: {kind: module, path: hotcb.modules.cb.callbacks.timing, symbol: TimingCallback}
        init: {every: 50}
        params: {window: 100}
        enabled: true

The file is re-read whenever it changes (:class:`DesiredStateFile` reads and checks the
YAML; the kernel hands the document to every module that reconciles one, the ``cb``
module reads its ``callbacks`` section); :func:`plan` turns the difference between it
and the live set into ops (``load`` for a new or re-targeted callback, ``set`` for
changed params, ``enable`` / ``disable``, ``unload`` for a callback this file loaded and
no longer lists). Reconciling the same file twice produces no ops.

The reference project's shape is read too: ``version: 1`` and the callbacks under the
module's own section (``cb: {callbacks: {timing: ...}}``: the ``section`` the cb module
passes), with the same keys per callback. Its other sections (``core``, ``opt``, ``loss``)
are for modules hotcb does not have and are left alone.

Example:
    >>> desired = parse_desired({"callbacks": {"hb": {"target": {"kind": "module",
    ...     "path": "hotcb.modules.cb.callbacks.heartbeat", "symbol": "HeartbeatCallback"},
    ...     "params": {"every": 5}}}})
    >>> [op.op for op in plan(desired, lambda cb_id: None, owned=set())]
    ['load']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hotcb.files import NotRegularFileError, read_regular
from hotcb.ops import CommandError, Op

__all__ = ["DesiredStateFile", "parse_desired", "plan"]

_SPEC_KEYS = frozenset({"target", "init", "params", "enabled"})


def _callbacks_section(
    data: Mapping[str, Any], module: str | None
) -> tuple[Mapping[str, Any], str]:
    """The ``callbacks`` mapping of a document (ours at the top, or the reference's under
    the ``module`` section) and the key it is under."""
    version = data.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise CommandError(f"version must be 1, got {version!r}", key="version")
    section, where = data, ""
    if module is not None and data.get(module) is not None:
        section, where = data[module], f"{module}."
        if not isinstance(section, Mapping):
            raise CommandError("expected a mapping with a 'callbacks' mapping", key=module)
        if data.get("callbacks") is not None:
            raise CommandError(
                f"the callbacks are listed twice: keep either 'callbacks:' or "
                f"'{module}: {{callbacks:}}'",
                key=module,
            )
        unknown = sorted(set(section) - {"callbacks"})
        if unknown:
            raise CommandError(f"unknown key(s) {', '.join(map(str, unknown))}", key=module)
    callbacks = section.get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        raise CommandError(
            "the desired-state file must be a mapping with a 'callbacks' mapping",
            key=f"{where}callbacks",
        )
    return callbacks, f"{where}callbacks"


def parse_desired(data: Any, *, section: str | None = None) -> dict[str, Op]:
    """Validate a decoded desired-state document into one ``load`` op per callback.

    ``section``: the module whose section may hold the callbacks instead of the top level
    (the reference's shape). Raises :class:`~hotcb.ops.CommandError` with the callback's
    ``key`` (``callbacks.<id>``, or ``<section>.callbacks.<id>``).

    >>> target = {"kind": "module", "path": "m", "symbol": "C"}
    >>> doc = {"version": 1, "mod": {"callbacks": {"t": {"target": target}}}}
    >>> list(parse_desired(doc, section="mod"))
    ['t']
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise CommandError("the desired-state file must be a mapping with a 'callbacks' mapping")
    callbacks, where = _callbacks_section(data, section)
    out: dict[str, Op] = {}
    for cb_id, spec in callbacks.items():
        key = f"{where}.{cb_id}"
        if not isinstance(spec, Mapping):
            raise CommandError("expected a mapping with target, init, params, enabled", key=key)
        unknown = sorted(set(spec) - _SPEC_KEYS)
        if unknown:
            raise CommandError(f"unknown key(s) {', '.join(unknown)}", key=key)
        try:
            out[str(cb_id)] = Op.from_dict({"op": "load", "id": cb_id, **spec})
        except CommandError as exc:
            raise exc.located(key=key) from None
    return out


def plan(
    desired: Mapping[str, Op],
    current: Callable[[str], Mapping[str, Any] | None],
    *,
    owned: set[str],
) -> list[Op]:
    """Ops that take the live set to ``desired``.

    ``current(id)`` returns ``{target, init, params, enabled}`` for a loaded callback
    (None if absent); ``owned`` is the ids this file loaded before.
    """
    ops: list[Op] = []
    for cb_id, want in desired.items():
        have = current(cb_id)
        if have is None or have["target"] != want.target or dict(have["init"]) != dict(want.init):
            ops.append(want)
            continue
        changed = {k: v for k, v in want.params.items() if have["params"].get(k, _MISSING) != v}
        if changed:
            ops.append(Op(op="set", id=cb_id, params=changed))
        enabled = True if want.enabled is None else want.enabled
        if enabled != have["enabled"]:
            ops.append(Op(op="enable" if enabled else "disable", id=cb_id))
    for cb_id in sorted(owned - set(desired)):
        if current(cb_id) is not None:
            ops.append(Op(op="unload", id=cb_id))
    return ops


_MISSING = object()


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` (a symlink to it is resolved first: this is the user's own
    config file), refusing a FIFO or device instead of blocking on it."""
    return read_regular(os.path.realpath(path))


class DesiredStateFile:
    """Watches a desired-state YAML file; :meth:`read_if_changed` returns new content."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._signature: tuple[int, int, int] | None = None

    def read_if_changed(self) -> dict[str, Any] | None:
        """The parsed document (a mapping; an empty file is ``{}``) if the file changed
        since the last call, else None.

        Raises :class:`~hotcb.ops.CommandError` (once per change) for a file that does
        not parse as a YAML mapping; the caller records it and keeps the current set.
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig == self._signature:
            return None
        self._signature = sig
        try:
            data = yaml.safe_load(_read_regular(self.path).decode("utf-8"))
        except NotRegularFileError as exc:
            raise CommandError(str(exc)) from None  # its message names the path
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise CommandError(
                f"not valid YAML ({getattr(exc, 'problem', exc)})",
                path=self.path,
                line=mark.line + 1 if mark is not None else None,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read it: {exc}", path=self.path) from None
        except RecursionError:
            raise CommandError("not valid YAML (nested too deeply)", path=self.path) from None
        except ValueError:  # int() of a number too long to convert
            raise CommandError("not valid YAML (a number is too long)", path=self.path) from None
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise CommandError(
                "the desired-state file must be a mapping (callbacks: ...), "
                f"got {type(data).__name__}",
                path=self.path,
            )
        return dict(data)
