"""``hotcb undo [N]``: revert the last N changes the run applied, exactly.

Every change the ``cb`` module applies records in its ledger entry the value it replaced
(``payload.previous``, see :class:`~hotcb.modules.cb.controller.HotController`): the old
values of the params a ``set`` changed, the load spec (target, init, params, enabled) of
what an ``unload`` or a replacing ``load`` removed, the old ``enabled`` of ``enable`` and
``disable``. So each change has an exact inverse:

=======================  ==================================================
change                   undone by
=======================  ==================================================
``set ID k=new``         ``set ID k=old``
``load ID`` (new id)     ``unload ID``
``load ID`` (replacing)  ``load ID`` of the replaced callback
``unload ID``            ``load ID`` of the same target, init, params
``enable`` / ``disable`` ``disable`` / ``enable``
=======================  ==================================================

The inverse ops are ordinary commands (queued, recorded, answered like any other), each
marked ``undoes: <seq>`` so the ledger says what it reverted: the next ``hotcb undo`` goes
one change further back instead of undoing the undo. Only changes made by commands
(``source: external``) are undone, newest first; the first that fails stops the rest.

Example:
    >>> from hotcb.ledger import LedgerEntry
    >>> entry = LedgerEntry(seq=3, wall_time=0.0, step=9, epoch=None, event=None, module="cb",
    ...     op="set", id="hb", source="external", decision="applied",
    ...     payload={"params": {"every": 5}, "previous": {"every": 10}})
    >>> inverse(entry)
    {'op': 'set', 'id': 'hb', 'params': {'every': 10}, 'undoes': 3}
    >>> [e.seq for e in undoable([entry], 1)]
    [3]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from hotcb.cli.answer import answer_options
from hotcb.cli.app import RunSelection, fail, pass_selection
from hotcb.defaults import DEFAULT_MODULE
from hotcb.ledger import LedgerEntry, read_ledger

__all__ = ["UndoError", "inverse", "undo", "undoable"]

_CHANGES = ("load", "set", "enable", "disable", "unload")


class UndoError(ValueError):
    """A change that cannot be undone exactly (the message says why)."""


def _is_change(entry: LedgerEntry) -> bool:
    return (
        entry.module == DEFAULT_MODULE
        and entry.source == "external"
        and entry.decision == "applied"
        and entry.op in _CHANGES
        and entry.id is not None
    )


def undoable(entries: Sequence[LedgerEntry], count: int) -> list[LedgerEntry]:
    """The last ``count`` changes of ``entries`` not undone yet, newest first (an undo's
    own entry is not a change to undo: it takes the change it undid off the list)."""
    changes: list[LedgerEntry] = []
    for entry in entries:
        if not _is_change(entry):
            continue
        undoes = entry.payload.get("undoes")
        if isinstance(undoes, int):
            changes = [c for c in changes if c.seq != undoes]
        else:
            changes.append(entry)
    return changes[::-1][:count]


def _load_of(cb_id: str, spec: Any, seq: int) -> dict[str, Any]:
    if not isinstance(spec, dict) or not isinstance(spec.get("target"), dict):
        raise UndoError(f"#{seq} does not record what it replaced")
    data: dict[str, Any] = {"op": "load", "id": cb_id, "target": spec["target"]}
    for key in ("init", "params"):
        if spec.get(key):
            data[key] = spec[key]
    if spec.get("enabled") is False:
        data["enabled"] = False
    return data


def inverse(entry: LedgerEntry) -> dict[str, Any]:
    """The command that reverts the change ``entry`` recorded, marked ``undoes``.
    Raises :class:`UndoError` if the entry does not say enough to revert it exactly."""
    assert entry.id is not None
    payload, seq, cb_id = entry.payload, entry.seq, entry.id
    previous = payload.get("previous")
    if entry.op == "set":
        params = payload.get("params") or {}
        if not isinstance(previous, dict):
            raise UndoError(f"#{seq} was recorded without the values it replaced")
        unknown = [k for k in params if k not in previous]
        if unknown:
            raise UndoError(
                f"#{seq} set {', '.join(unknown)} of {cb_id!r}, which had no value hotcb "
                "knew before (a default inside the callback)"
            )
        data: dict[str, Any] = {"op": "set", "id": cb_id, "params": dict(previous)}
    elif entry.op in ("enable", "disable"):
        data = {"op": "disable" if entry.op == "enable" else "enable", "id": cb_id}
    elif entry.op == "unload" or payload.get("replaced"):
        data = _load_of(cb_id, previous, seq)
    else:
        data = {"op": "unload", "id": cb_id}
    data["undoes"] = seq
    return data


@click.command("undo")
@answer_options()
@click.argument("count", metavar="[N]", type=click.IntRange(min=1), default=1, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print each command and its answer as JSON.")
@pass_selection
def undo(selection: RunSelection, count: int, as_json: bool) -> None:
    """Revert the last N changes (default 1) the run applied, newest first.

    Each is reverted exactly, from the value the ledger recorded it replaced: a set
    restores the old values, a load is unloaded (or the callback it replaced loaded
    back), an unload loads the same target, init and params back, disable enables and
    enable disables. The reverting commands go through the run like any other and are
    answered the same way; the first that fails stops the rest.

    \b
    hotcb undo        # the last change
    hotcb undo 3      # the last three
    """
    from hotcb.cli.queue import send

    if selection.sweep is not None:
        fail("undo reverts the changes of one run: give --dir RUN_DIR (or --run N), not --sweep")
    run = selection.run_dir(read_only=False)
    changes = undoable(read_ledger(run.ledger).entries, count)
    if not changes:
        fail(f"nothing to undo: {run.path} has no applied change made by a command")
    try:
        commands = [(entry, inverse(entry)) for entry in changes]
    except UndoError as exc:
        fail(f"cannot undo exactly: {exc}; nothing was queued")
    if len(changes) < count:
        click.echo(f"only {len(changes)} change(s) to undo", err=True)
    for entry, data in commands:
        send(selection, data, as_json, note=f" (undoes #{entry.seq} {entry.op} {entry.id})")
