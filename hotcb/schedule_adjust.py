"""Schedule adjustments: replay a schedule with changes, written as config.

``hotcb.schedule.adjust`` holds rules; :func:`adjust_schedule` applies them, in order, to
the schedule's entries (``hotcb.replay.effective_schedule`` calls it before a run uses its
schedule). Five kinds, as in the reference's adjust overlays:

=====================  ================================================================
``replace_params``     set these params of each matched entry (the others are kept)
``transform_params``   ``{scale: {name: factor}, add: {name: delta}}``: arithmetic on the
                       matched entries' numeric params (a param an entry lacks is skipped)
``shift_step``         add this many steps to each matched entry (never below step 0)
``drop: true``         remove the matched entries
``insert``             a new entry (no ``match``): ``step``/``event`` or ``at: {step,
                       event}``, then ``op``, ``id`` and the op fields, as an entry
=====================  ================================================================

Every rule but ``insert`` has a ``match`` (``{}`` matches every entry) that selects by
``id``, ``op``, ``module``, ``at_step``, ``at_event``, ``step_min``/``step_max``
(inclusive), ``has_param``, and ``nth``: only the n-th (0-based) of the entries the other
fields select, in the order they apply. Steps are matched as written, before
``step_offset``. A rule that matches no entry is an error (a typo'd id would otherwise
replay the run unchanged). ``set_params`` (the reference's name) and ``set`` are one op.

``adjust`` is a keyed mapping of rules (an override adds one:
``+hotcb.schedule.adjust.slow_hb={match:{id:heartbeat},replace_params:{every:10}}``; a
null rule is skipped), a list of rules, or the reference's overlay file shape
``{version: 1, patches: [rule, ...]}`` (keyed rules beside ``patches`` apply after them). A bad rule raises
:class:`~hotcb.schedule.ScheduleError` naming ``hotcb.schedule.adjust.<key>`` and the field.

This module is pure and light (no Hydra, no torch).

Example:
    >>> from hotcb.schedule import Schedule
    >>> s = Schedule.from_config({
    ...     "s10_set_hb": {"step": 10, "op": "set", "id": "hb", "params": {"every": 2}},
    ...     "s20_disable_hb": {"step": 20, "op": "disable", "id": "hb"},
    ...     "adjust": {"slow": {"match": {"id": "hb", "has_param": "every"},
    ...                         "transform_params": {"scale": {"every": 5}}},
    ...                "late": {"match": {"op": "disable"}, "shift_step": 5}}})
    >>> [(k, e.step, dict(e.params)) for k, e in adjust_schedule(s).ordered()]
    [('s10_set_hb', 10, {'every': 10}), ('s20_disable_hb', 25, {})]
    >>> adjust_schedule(s).adjust
    {}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hotcb.ops import CommandError
from hotcb.schedule import Schedule, ScheduleEntry, ScheduleError, entry_key

__all__ = ["ACTIONS", "Match", "Rule", "adjust_schedule", "parse_rules"]

#: The action fields of a rule.
ACTIONS: tuple[str, ...] = ("replace_params", "transform_params", "shift_step", "drop", "insert")
_MATCH_FIELDS = frozenset(
    {"id", "op", "module", "at_step", "at_event", "step_min", "step_max", "has_param", "nth"}
)
#: op names that are one op (the reference calls ``set`` ``set_params``)
_OP_NAMES = {"set_params": "set"}


def _op_name(op: str) -> str:
    return _OP_NAMES.get(op, op)


class _RuleError(Exception):
    """One field of a rule is bad (turned into a located ScheduleError by parse_rules)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")


def _int(value: Any, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _RuleError(name, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _RuleError(name, f"must be >= {minimum}, got {value}")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _RuleError(name, f"must be a non-empty string, got {value!r}")
    return value


def _numbers(value: Any, name: str) -> dict[str, float | int]:
    if not isinstance(value, Mapping):
        raise _RuleError(name, f"must be a mapping of param -> number, got {value!r}")
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _RuleError(f"{name}.{key}", f"must be a number, got {number!r}")
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True)
class Match:
    """Which entries a rule changes; None: any.

    >>> m = Match.from_dict({"id": "hb", "step_min": 5, "step_max": 10})
    >>> m.selects(ScheduleEntry(step=7, event=None, op="set", id="hb"))
    True
    >>> m.selects(ScheduleEntry(step=11, event=None, op="set", id="hb"))
    False
    """

    id: str | None = None
    op: str | None = None
    module: str | None = None
    at_step: int | None = None
    at_event: str | None = None
    step_min: int | None = None
    step_max: int | None = None
    has_param: str | None = None
    nth: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Match:
        """Check a ``match`` mapping (raises an error naming the bad field)."""
        if not isinstance(data, Mapping):
            raise _RuleError("match", f"must be a mapping, got {data!r}")
        unknown = sorted(set(data) - _MATCH_FIELDS)
        if unknown:
            raise _RuleError(
                f"match.{unknown[0]}",
                f"unknown field; match by {', '.join(sorted(_MATCH_FIELDS))}",
            )
        values: dict[str, Any] = {}
        for name in ("id", "op", "module", "at_event", "has_param"):
            if data.get(name) is not None:
                values[name] = _text(data[name], f"match.{name}")
        for name in ("at_step", "step_min", "step_max", "nth"):
            if data.get(name) is not None:
                values[name] = _int(data[name], f"match.{name}", minimum=0)
        if "op" in values:
            values["op"] = _op_name(values["op"])
        lo, hi = values.get("step_min"), values.get("step_max")
        if lo is not None and hi is not None and lo > hi:
            raise _RuleError("match.step_max", f"is below step_min ({hi} < {lo})")
        return cls(**values)

    def selects(self, entry: ScheduleEntry) -> bool:
        """True if ``entry`` has every field this match names (``nth`` aside)."""
        return (
            (self.id is None or entry.id == self.id)
            and (self.op is None or _op_name(entry.op) == self.op)
            and (self.module is None or entry.module == self.module)
            and (self.at_step is None or entry.step == self.at_step)
            and (self.at_event is None or entry.event == self.at_event)
            and (self.step_min is None or entry.step >= self.step_min)
            and (self.step_max is None or entry.step <= self.step_max)
            and (self.has_param is None or self.has_param in entry.params)
        )


@dataclass(frozen=True)
class Rule:
    """One adjustment: ``match`` and what to do with the matched entries, or ``insert``.
    ``key``: where it is in the config (``hotcb.schedule.adjust.<key>``)."""

    key: str
    match: Match | None = None
    replace_params: Mapping[str, Any] = field(default_factory=dict)
    scale: Mapping[str, float | int] = field(default_factory=dict)
    add: Mapping[str, float | int] = field(default_factory=dict)
    shift_step: int = 0
    drop: bool = False
    insert: ScheduleEntry | None = None

    @classmethod
    def from_dict(cls, key: str, data: Any) -> Rule:
        """Check one rule. Raises :class:`~hotcb.schedule.ScheduleError` naming
        ``hotcb.schedule.adjust.<key>`` and the field.

        >>> Rule.from_dict("x", {"match": {"id": "hb"}, "shift_step": "3"})
        Traceback (most recent call last):
        ...
        hotcb.schedule.ScheduleError: hotcb.schedule.adjust.x: shift_step: must be an integer, got '3'
        """
        try:
            return cls._parse(key, data)
        except _RuleError as exc:
            raise ScheduleError(str(exc), key=f"hotcb.schedule.adjust.{key}") from None

    @classmethod
    def _parse(cls, key: str, data: Any) -> Rule:
        if not isinstance(data, Mapping):
            raise _RuleError("rule", f"must be a mapping with match and an action, got {data!r}")
        unknown = sorted(set(data) - {"match", *ACTIONS})
        if unknown:
            raise _RuleError(
                unknown[0], f"unknown field; a rule has match and one of {', '.join(ACTIONS)}"
            )
        actions = [a for a in ACTIONS if data.get(a) is not None]
        if not actions:
            raise _RuleError("rule", f"has no action: give one of {', '.join(ACTIONS)}")
        if "insert" in actions:
            if len(actions) > 1 or data.get("match") is not None:
                raise _RuleError("insert", "stands alone: no match and no other action")
            return cls(key=key, insert=_insert_entry(data["insert"]))
        if data.get("match") is None:
            raise _RuleError("match", "missing: say which entries to change ({} for all)")
        match = Match.from_dict(data["match"])
        drop = data.get("drop")
        if drop is not None and not isinstance(drop, bool):
            raise _RuleError("drop", f"must be true or false, got {drop!r}")
        if drop and len(actions) > 1:
            raise _RuleError("drop", "cannot be combined with another action")
        replace = data.get("replace_params") or {}
        if not isinstance(replace, Mapping):
            raise _RuleError("replace_params", f"must be a mapping, got {replace!r}")
        transform = data.get("transform_params") or {}
        if not isinstance(transform, Mapping):
            raise _RuleError("transform_params", f"must be a mapping, got {transform!r}")
        extra = sorted(set(transform) - {"scale", "add"})
        if extra:
            raise _RuleError(f"transform_params.{extra[0]}", "unknown: use scale or add")
        scale = _numbers(transform.get("scale") or {}, "transform_params.scale")
        add = _numbers(transform.get("add") or {}, "transform_params.add")
        shift = data.get("shift_step")
        return cls(
            key=key,
            match=match,
            replace_params=dict(replace),
            scale=scale,
            add=add,
            shift_step=_int(shift, "shift_step") if shift is not None else 0,
            drop=bool(drop),
        )

    def changed(self, key: str, entry: ScheduleEntry) -> ScheduleEntry:
        """``entry`` with this rule's changes (``drop`` aside)."""
        params = {**entry.params, **self.replace_params}
        for name, factor in self.scale.items():
            if name in params:
                params[name] = _number(params[name], name, key, self.key) * factor
        for name, delta in self.add.items():
            if name in params:
                params[name] = _number(params[name], name, key, self.key) + delta
        step = max(0, entry.step + self.shift_step)
        return dataclasses.replace(entry, params=params, step=step)


def _number(value: Any, name: str, entry_key_: str, rule_key: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScheduleError(
            f"transform_params: param {name!r} of entry {entry_key_} is {value!r}, not a number",
            key=f"hotcb.schedule.adjust.{rule_key}",
        )
    return value


def _insert_entry(data: Any) -> ScheduleEntry:
    if not isinstance(data, Mapping):
        raise _RuleError("insert", f"must be an entry (step, op, id, ...), got {data!r}")
    flat = {k: v for k, v in data.items() if k != "at"}
    at = data.get("at")
    if at is not None:
        if not isinstance(at, Mapping) or set(at) - {"step", "event"}:
            raise _RuleError("insert.at", f"must be {{step: N, event: E}}, got {at!r}")
        flat.update(at)
    if isinstance(flat.get("op"), str):
        flat["op"] = _op_name(flat["op"])
    try:
        return ScheduleEntry.from_dict(flat)
    except CommandError as exc:
        raise _RuleError("insert", exc.message) from None


def _keyed(adjust: Any) -> list[tuple[str, Any]]:
    """``(key, rule)`` from any of the three shapes of ``adjust``."""
    if isinstance(adjust, Mapping) and isinstance(adjust.get("patches"), Sequence):
        if adjust.get("version", 1) != 1:
            raise ScheduleError(
                f"overlay version {adjust['version']!r} is not supported (use 1)",
                key="hotcb.schedule.adjust.version",
            )
        patches = [(f"patches.{i}", rule) for i, rule in enumerate(adjust["patches"])]
        # keyed rules beside the patches (an override added them) apply after them
        others = [(str(k), r) for k, r in adjust.items() if k not in ("version", "patches")]
        return patches + others
    if isinstance(adjust, Mapping):
        return [(str(k), rule) for k, rule in adjust.items()]
    if isinstance(adjust, Sequence) and not isinstance(adjust, str):
        return [(str(i), rule) for i, rule in enumerate(adjust)]
    raise ScheduleError(
        f"must be a mapping or a list of rules, got {adjust!r}", key="hotcb.schedule.adjust"
    )


def parse_rules(adjust: Any) -> list[Rule]:
    """The rules of an ``adjust`` node (keyed mapping, list, or overlay; null rules
    skipped), checked. Raises :class:`~hotcb.schedule.ScheduleError`.

    >>> [r.key for r in parse_rules({"version": 1, "patches": [{"match": {}, "drop": True}]})]
    ['patches.0']
    """
    return [Rule.from_dict(key, rule) for key, rule in _keyed(adjust) if rule is not None]


def _apply(rule: Rule, entries: dict[str, ScheduleEntry]) -> dict[str, ScheduleEntry]:
    if rule.insert is not None:
        entries[entry_key(rule.insert, entries)] = rule.insert
        return entries
    assert rule.match is not None
    match = rule.match
    # the order they apply: by step, then mapping order (sorted is stable)
    selected = sorted(
        (k for k, e in entries.items() if match.selects(e)), key=lambda k: entries[k].step
    )
    if match.nth is not None:
        selected = selected[match.nth : match.nth + 1]
    if not selected:
        raise ScheduleError(
            "matches no entry of the schedule (check match, or remove the rule)",
            key=f"hotcb.schedule.adjust.{rule.key}",
        )
    chosen = set(selected)
    out: dict[str, ScheduleEntry] = {}
    for key, entry in entries.items():
        if key not in chosen:
            out[key] = entry
        elif not rule.drop:
            out[key] = rule.changed(key, entry)
    return out


def adjust_schedule(schedule: Schedule) -> Schedule:
    """``schedule`` with its ``adjust`` rules applied in order (each sees what the
    previous ones made) and ``adjust`` emptied; ``schedule`` itself when it has none.
    Entries keep their keys; an inserted one gets a key as an exported one would
    (:func:`~hotcb.schedule.entry_key`). Raises :class:`~hotcb.schedule.ScheduleError`.

    >>> s = Schedule.from_config({"a": {"step": 1, "op": "set", "id": "hb"},
    ...     "adjust": [{"insert": {"at": {"step": 3, "event": "x"}, "op": "set_params",
    ...                            "id": "hb", "params": {"every": 1}}},
    ...                {"match": {"op": "set", "nth": 0}, "drop": True}]})
    >>> [(k, e.step, e.op) for k, e in adjust_schedule(s).ordered()]
    [('s3_set_hb', 3, 'set')]
    """
    if not schedule.adjust:
        return schedule
    entries = dict(schedule.entries)
    for rule in parse_rules(schedule.adjust):
        entries = _apply(rule, entries)
    return dataclasses.replace(schedule, entries=entries, adjust={})
