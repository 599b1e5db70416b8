"""The reference's recipe files (``hotcb.recipe.jsonl``) to and from a schedule.

A recipe is JSON Lines, one op a line, in the order they apply::

    {"at": {"step": 300, "event": "train_step_end"}, "module": "cb", "op": "set_params",
     "id": "heartbeat", "params": {"every": 10}}

with ``target``, ``init`` and ``enabled`` for a load, and ``source_capture: {sha256,
captured_path}`` for a ``python_file`` load (``captured_path`` relative to the run dir,
where the recipe is exported by default). ``hotcb recipe export`` writes one from a run's
ledger (:func:`recipe_from_ledger`: the same ops ``export-config --schedule`` writes, see
:func:`hotcb.schedule.schedule_from_ledger`; ``set`` is spelled ``set_params``, as the
reference does), and ``hotcb recipe import`` turns one into a ``hotcb/schedule`` option
(:func:`schedule_from_recipe`).

This module is light (no Hydra, no torch): the CLI imports it.

Example:
    >>> from hotcb.ledger import LedgerEntry
    >>> entry = LedgerEntry(seq=3, wall_time=0.0, step=120, epoch=None,
    ...     event="train_step_end", module="cb", op="set", id="heartbeat",
    ...     source="external", decision="applied", payload={"params": {"every": 10}})
    >>> lines = recipe_from_ledger([entry])
    >>> lines
    [{'at': {'step': 120, 'event': 'train_step_end'}, 'module': 'cb', 'op': 'set_params', 'id': 'heartbeat', 'params': {'every': 10}}]
    >>> schedule = schedule_from_recipe(recipe_text(lines), path="r.jsonl")
    >>> [(k, e.step, e.event, e.op, dict(e.params)) for k, e in schedule.ordered()]
    [('s120_set_heartbeat', 120, 'train_step_end', 'set', {'every': 10})]
    >>> schedule_from_recipe('{"at": {"step": 1}}\\n', path="r.jsonl")
    Traceback (most recent call last):
    ...
    hotcb.recipe.RecipeError: r.jsonl line 1: missing 'op'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hotcb.errors import HotcbError
from hotcb.ledger import LedgerEntry
from hotcb.ops import CommandError
from hotcb.rundir import SOURCES_DIR
from hotcb.schedule import Schedule, ScheduleEntry, entry_key, schedule_from_ledger

__all__ = [
    "RECIPE_FILE",
    "RecipeError",
    "recipe_from_ledger",
    "recipe_from_schedule",
    "recipe_text",
    "schedule_from_recipe",
]

#: The recipe's file name in a run dir (``hotcb recipe export`` writes it there by default).
RECIPE_FILE = "hotcb.recipe.jsonl"
#: The fields of a recipe line.
_FIELDS = frozenset(
    {"at", "module", "op", "id", "params", "target", "init", "enabled", "source_capture"}
)
#: op names as the reference's recipes spell them, and back
_TO_RECIPE = {"set": "set_params"}
_FROM_RECIPE = {v: k for k, v in _TO_RECIPE.items()}
#: where an exported line's captured sha256 travels inside its target, between the two steps
_SHA = "sha256"


class RecipeError(HotcbError):
    """A recipe line is invalid (``path`` and ``line`` say which)."""


def recipe_from_schedule(schedule: Schedule) -> list[dict[str, Any]]:
    """The recipe lines of ``schedule``, in the order its entries apply (``step_offset``
    added). A target carrying ``sha256`` (see :func:`recipe_from_ledger`) gets a
    ``source_capture``.

    >>> s = Schedule.from_config({"a": {"step": 2, "event": None, "op": "disable", "id": "t"}})
    >>> recipe_from_schedule(s)
    [{'at': {'step': 2, 'event': None}, 'module': 'cb', 'op': 'disable', 'id': 't'}]
    """
    out: list[dict[str, Any]] = []
    for _, entry in schedule.ordered():
        line: dict[str, Any] = {
            "at": {"step": entry.step, "event": entry.event},
            "module": entry.module,
            "op": _TO_RECIPE.get(entry.op, entry.op),
            "id": entry.id,
        }
        if entry.params:
            line["params"] = dict(entry.params)
        sha = None
        if entry.target is not None:
            target = dict(entry.target)
            sha = target.pop(_SHA, None)
            line["target"] = target
        if entry.init:
            line["init"] = dict(entry.init)
        if entry.enabled is not None:
            line["enabled"] = entry.enabled
        if isinstance(sha, str):
            line["source_capture"] = {"sha256": sha, "captured_path": f"{SOURCES_DIR}/{sha}.py"}
        out.append(line)
    return out


def recipe_from_ledger(entries: Iterable[LedgerEntry]) -> list[dict[str, Any]]:
    """The recipe of a run: the ops of its trajectory (every op applied during the run,
    as :func:`~hotcb.schedule.schedule_from_ledger` selects them), in ledger order; a
    ``python_file`` load's captured source in ``source_capture``."""
    schedule = schedule_from_ledger(entries, source=lambda sha, target: {**target, _SHA: sha})
    return recipe_from_schedule(schedule)


def recipe_text(lines: Iterable[Mapping[str, Any]]) -> str:
    """The recipe as JSON Lines (one compact object a line).

    >>> recipe_text([{"at": {"step": 1, "event": None}, "op": "enable", "id": "t"}])
    '{"at":{"step":1,"event":null},"op":"enable","id":"t"}\\n'
    """
    return "".join(
        json.dumps(dict(line), separators=(",", ":"), ensure_ascii=False) + "\n" for line in lines
    )


def _entry(data: Any) -> tuple[ScheduleEntry, Mapping[str, Any] | None]:
    """One recipe line as an entry, and its ``source_capture`` (raises CommandError)."""
    if not isinstance(data, Mapping):
        raise CommandError(f"a recipe line must be a JSON object, got {data!r}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise CommandError(
            f"unknown field {unknown[0]!r}; a recipe line has {', '.join(sorted(_FIELDS))}"
        )
    at = data.get("at")
    if not isinstance(at, Mapping) or "step" not in at or set(at) - {"step", "event"}:
        raise CommandError(f'\'at\' must be {{"step": N, "event": E}}, got {at!r}')
    if "op" not in data:
        raise CommandError("missing 'op'")
    flat = {k: v for k, v in data.items() if k not in ("at", "source_capture") and v is not None}
    flat["step"], flat["event"] = at["step"], at.get("event")
    if isinstance(flat["op"], str):
        flat["op"] = _FROM_RECIPE.get(flat["op"], flat["op"])
    capture = data.get("source_capture")
    if capture is not None and (
        not isinstance(capture, Mapping) or not isinstance(capture.get("sha256"), str)
    ):
        raise CommandError(
            f'\'source_capture\' must be {{"sha256": ..., "captured_path": ...}}, got {capture!r}'
        )
    return ScheduleEntry.from_dict(flat), capture


def schedule_from_recipe(
    text: str,
    *,
    path: str = "recipe",
    source: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] | None = None,
) -> Schedule:
    """The schedule of a recipe's ``text`` (from the file ``path``, named in errors), keys
    as an exported schedule has them. ``source(capture, target)``: the target to use for
    a line with a ``source_capture`` (e.g. the captured file copied into the config dir);
    default: the target as written. Raises :class:`RecipeError` naming the line: nothing
    is made of a recipe with a bad line.
    """
    parsed: list[tuple[ScheduleEntry, Mapping[str, Any] | None]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RecipeError(
                f"not valid JSON: {exc.msg} at column {exc.colno}", path=path, line=number
            ) from None
        try:
            entry, capture = _entry(data)
        except CommandError as exc:
            raise RecipeError(exc.message, path=path, line=number) from None
        parsed.append((entry, capture))
    if not parsed:
        raise RecipeError("the recipe has no op", path=path)
    entries: dict[str, ScheduleEntry] = {}
    for entry, capture in parsed:  # every line is valid: only now may ``source`` write
        if capture is not None and source is not None and entry.target is not None:
            entry = entry.with_target(source(capture, entry.target))
        entries[entry_key(entry, entries)] = entry
    return Schedule(entries=entries)
