"""The schedule: ops to apply at given steps, as Hydra config (deterministic replay).

A :class:`Schedule` is an ordered mapping of stable, readable keys to
:class:`ScheduleEntry` records: "at step N (at event E), apply this op". Any op of any
kernel module fits (``module``, ``op``, ``id`` and the op fields of
:data:`hotcb.ops.OP_FIELDS`), so a schedule replays ``cb`` ops and those of any other
module alike. ``hotcb export-config --schedule`` writes a run's trajectory as one
(:func:`schedule_from_ledger`); the kernel applies each entry when its step and event
are reached (see docs/replay.md).

As Hydra config the schedule is the ``hotcb.schedule`` node: the settings
(:data:`SETTING_KEYS`: ``policy``, ``step_offset``, ``adjust``) and, under every other key,
one entry::

    hotcb:
      schedule:
        policy: best_effort          # or strict: a missed entry is a failed ledger entry
        step_offset: 0               # added to every entry's step
        s120_set_heartbeat:          # s<step>_<op>_<id>, _2, _3 ... on collisions
          step: 120
          event: train_step_end      # null: the first safe point at that step
          op: set
          id: heartbeat
          params: {every: 10}

so an ordinary override adjusts one entry (``hotcb.schedule.s120_set_heartbeat.params.every=10``)
or drops it (``~hotcb.schedule.s120_set_heartbeat``). Entries apply in order of step, then
of the mapping. The ``module`` key is written for ops of modules other than ``cb``. A big
schedule keeps its entries in a file the node names (``file``, ``sha256``; see
:mod:`hotcb.schedule_file`).

This module is light (no Hydra, no torch): the CLI imports it. An entry's op is checked
against its module's op table (:meth:`ScheduleEntry.to_op`) only when a kernel, which
registers its modules' ops, loads the schedule.

Example:
    >>> from hotcb.ledger import LedgerEntry
    >>> entry = LedgerEntry(seq=3, wall_time=0.0, step=120, epoch=None,
    ...     event="train_step_end", module="cb", op="set", id="heartbeat",
    ...     source="external", decision="applied", payload={"params": {"every": 10}})
    >>> schedule = schedule_from_ledger([entry])
    >>> config = schedule.to_config()
    >>> config
    {'policy': 'best_effort', 'step_offset': 0, 's120_set_heartbeat': {'step': 120, 'event': 'train_step_end', 'op': 'set', 'id': 'heartbeat', 'params': {'every': 10}}}
    >>> Schedule.from_config(config) == schedule
    True
    >>> [(key, e.step, e.op) for key, e in schedule.ordered()]
    [('s120_set_heartbeat', 120, 'set')]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hotcb.defaults import DEFAULT_MODULE
from hotcb.ledger import LedgerEntry
from hotcb.modules.base import op_from_entry
from hotcb.ops import OP_FIELDS, CallbackTarget, CommandError, Op, check_id, check_text

__all__ = [
    "POLICIES",
    "SCHEDULE_SOURCE",
    "SETTING_KEYS",
    "Schedule",
    "ScheduleEntry",
    "ScheduleError",
    "entry_key",
    "schedule_from_ledger",
]

#: What a run does with an entry it does not apply (its step is never reached, or passed).
POLICIES: tuple[str, ...] = ("best_effort", "strict")
Policy = Literal["best_effort", "strict"]
#: Keys of the ``hotcb.schedule`` node that are settings, not entries. ``adjust`` holds the
#: schedule adjustments (see :func:`hotcb.replay.effective_schedule`); ``file`` and
#: ``sha256`` name a big schedule's entries file (see :mod:`hotcb.schedule_file`).
SETTING_KEYS: tuple[str, ...] = ("policy", "step_offset", "adjust", "file", "sha256")
#: The ``source`` of the ledger entry of an op applied from the schedule (one of
#: :data:`hotcb.ledger.SOURCES`).
SCHEDULE_SOURCE = "schedule"

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_ENTRY_KEYS = frozenset({"step", "event", "module", "op", "id", *OP_FIELDS})


class ScheduleError(CommandError):
    """A schedule (or one entry of it) is invalid; ``key`` names the entry's config key."""


def _is_step(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class ScheduleEntry:
    """At ``step`` (and ``event``: None = the first safe point at that step) apply one op.

    The op is any op of any kernel module: ``module`` (default ``cb``), ``op``, ``id``
    and the op fields ``params``, ``target``, ``init``, ``enabled``, as in a command.

    >>> e = ScheduleEntry.from_dict({"step": 5, "event": None, "op": "disable", "id": "timing"})
    >>> e.to_dict()
    {'step': 5, 'event': None, 'op': 'disable', 'id': 'timing'}
    >>> e.to_op()
    Op(op='disable', id='timing', module='cb', params={}, target=None, init={}, enabled=None, at_step=None, undoes=None)
    >>> e.shifted(100).step
    105
    """

    step: int
    event: str | None
    op: str
    id: str
    module: str = DEFAULT_MODULE
    params: Mapping[str, Any] = field(default_factory=dict)
    target: Mapping[str, Any] | None = None
    init: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as config (``module`` only when not ``cb``; empty fields omitted)."""
        out: dict[str, Any] = {"step": self.step, "event": self.event}
        if self.module != DEFAULT_MODULE:
            out["module"] = self.module
        out["op"] = self.op
        out["id"] = self.id
        if self.target is not None:
            out["target"] = dict(self.target)
        if self.init:
            out["init"] = dict(self.init)
        if self.params:
            out["params"] = dict(self.params)
        if self.enabled is not None:
            out["enabled"] = self.enabled
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleEntry:
        """Check the shape of one entry (its op is checked by :meth:`to_op`). Raises
        :class:`ScheduleError`."""
        if not isinstance(data, Mapping):
            raise ScheduleError(
                f"a schedule entry must be a mapping with step, op, id; got {data!r}"
            )
        unknown = sorted(set(data) - _ENTRY_KEYS)
        if unknown:
            raise ScheduleError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; an entry may have "
                f"{', '.join(sorted(_ENTRY_KEYS))}"
            )
        for name in ("step", "op", "id"):
            if name not in data:
                raise ScheduleError(f"missing {name!r}")
        step = data["step"]
        if not _is_step(step):
            raise ScheduleError(f"'step' must be an integer >= 0, got {step!r}")
        event = data.get("event")
        if event is not None and not isinstance(event, str):
            raise ScheduleError(f"'event' must be an event name or null, got {event!r}")
        module = data.get("module", DEFAULT_MODULE)
        op = data["op"]
        for name, value in (("module", module), ("op", op)):
            if not isinstance(value, str) or not value:
                raise ScheduleError(f"{name!r} must be a non-empty string, got {value!r}")
            check_text(value, name)
        for name in ("params", "init", "target"):
            value = data.get(name)
            if value is not None and not isinstance(value, Mapping):
                raise ScheduleError(f"{name!r} must be a mapping, got {value!r}")
        enabled = data.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise ScheduleError(f"'enabled' must be true or false, got {enabled!r}")
        target = data.get("target")
        return cls(
            step=step,
            event=event,
            op=op,
            id=check_id(data["id"]),
            module=module,
            params=dict(data.get("params") or {}),
            target=dict(target) if target is not None else None,
            init=dict(data.get("init") or {}),
            enabled=enabled,
        )

    def to_op(self) -> Op:
        """The op, checked against its module's op table (registered by the kernel).
        Raises :class:`~hotcb.ops.CommandError`."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("step", "event")}
        data["module"] = self.module
        return Op.from_dict(data)

    def shifted(self, offset: int) -> ScheduleEntry:
        """This entry ``offset`` steps later (earlier if negative; never before step 0)."""
        return _replace(self, step=max(0, self.step + offset))

    def with_target(self, target: CallbackTarget | Mapping[str, Any] | None) -> ScheduleEntry:
        """This entry with another ``target`` (e.g. a captured source in the config dir)."""
        if isinstance(target, CallbackTarget):
            target = target.to_dict()
        return _replace(self, target=target)


def _replace(entry: ScheduleEntry, **changes: Any) -> ScheduleEntry:
    from dataclasses import replace

    return replace(entry, **changes)


def entry_key(entry: ScheduleEntry, taken: Iterable[str] | Mapping[str, Any] = ()) -> str:
    """The readable key of ``entry``: ``s<step>_<op>_<id>`` (``s<step>_<module>_<op>_<id>``
    for a module other than ``cb``), ``_2``, ``_3`` ... appended while it is in ``taken``.
    Characters Hydra's key grammar refuses become ``_``.

    >>> e = ScheduleEntry(step=120, event=None, op="set", id="heartbeat")
    >>> entry_key(e), entry_key(e, taken={"s120_set_heartbeat"})
    ('s120_set_heartbeat', 's120_set_heartbeat_2')
    """
    parts = [f"s{entry.step}"]
    if entry.module != DEFAULT_MODULE:
        parts.append(entry.module)
    parts += [entry.op, entry.id]
    base = re.sub(r"[^A-Za-z0-9_\-]", "_", "_".join(parts))
    if not isinstance(taken, (set, frozenset, Mapping)):
        taken = set(taken)
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    return key


@dataclass(frozen=True)
class Schedule:
    """Entries by key (in mapping order), what to do with a missed one (``policy``), and
    ``step_offset``, added to every step when the run loads it. ``adjust``: the
    adjustments as written in config (applied before the run uses the schedule).

    >>> s = Schedule.from_config({"policy": "strict", "step_offset": 10,
    ...     "b": {"step": 5, "op": "enable", "id": "t"}, "a": {"step": 5, "op": "disable", "id": "t"},
    ...     "c": {"step": 1, "op": "unload", "id": "u"}})
    >>> [(k, e.step) for k, e in s.ordered()]
    [('c', 11), ('b', 15), ('a', 15)]
    """

    entries: Mapping[str, ScheduleEntry] = field(default_factory=dict)
    policy: Policy = "best_effort"
    step_offset: int = 0
    adjust: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ScheduleError(
                f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}",
                key="hotcb.schedule.policy",
            )
        if isinstance(self.step_offset, bool) or not isinstance(self.step_offset, int):
            raise ScheduleError(
                f"step_offset must be an integer, got {self.step_offset!r}",
                key="hotcb.schedule.step_offset",
            )
        for key in self.entries:
            if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key in SETTING_KEYS:
                raise ScheduleError(
                    f"invalid schedule key {key!r}: use letters, digits, '_' or '-' (not "
                    f"{', '.join(SETTING_KEYS)})"
                )

    def __len__(self) -> int:
        return len(self.entries)

    def ordered(self) -> list[tuple[str, ScheduleEntry]]:
        """``(key, entry)`` in the order they apply: by step (``step_offset`` added), then
        mapping order."""
        offset = self.step_offset
        items = [(k, e.shifted(offset) if offset else e) for k, e in self.entries.items()]
        return sorted(items, key=lambda item: item[1].step)

    def to_config(self) -> dict[str, Any]:
        """The ``hotcb.schedule`` node (plain values)."""
        out: dict[str, Any] = {"policy": self.policy, "step_offset": self.step_offset}
        if self.adjust:
            out["adjust"] = dict(self.adjust)
        for key, entry in self.entries.items():
            out[key] = entry.to_dict()
        return out

    @classmethod
    def from_config(cls, node: Any) -> Schedule:
        """Read a ``hotcb.schedule`` node (a mapping or an OmegaConf ``DictConfig``; a
        null entry, e.g. ``hotcb.schedule.<key>=null``, is dropped). Raises
        :class:`ScheduleError` naming every bad entry's key."""
        if node is None:
            return cls()
        if not isinstance(node, Mapping) and hasattr(node, "_metadata"):
            from omegaconf import OmegaConf  # a DictConfig: only then is OmegaConf needed

            node = OmegaConf.to_container(node, resolve=True)
        if not isinstance(node, Mapping):
            raise ScheduleError(
                f"'hotcb.schedule' must be a mapping of key -> entry, got {node!r}",
                key="hotcb.schedule",
            )
        entries: dict[str, ScheduleEntry] = {}
        problems: list[str] = []
        for key, value in node.items():
            if key in SETTING_KEYS or value is None:
                continue
            try:
                entries[str(key)] = ScheduleEntry.from_dict(value)
            except CommandError as exc:
                problems.append(f"hotcb.schedule.{key}: {exc}")
        if problems:
            raise ScheduleError("; ".join(problems), key="hotcb.schedule")
        adjust = node.get("adjust") or {}
        if isinstance(adjust, (list, tuple)):  # a list of rules: keyed by index
            adjust = {str(i): rule for i, rule in enumerate(adjust)}
        if not isinstance(adjust, Mapping):
            raise ScheduleError(
                f"'adjust' must be a mapping or a list of rules, got {adjust!r}",
                key="hotcb.schedule.adjust",
            )
        return cls(
            entries=entries,
            policy=node.get("policy", "best_effort"),
            step_offset=node.get("step_offset", 0),
            adjust=dict(adjust),
        )


#: Ledger sources whose applied ops are the run's trajectory (``config`` ones count only
#: when applied at an event: the desired-state file, not the initial set at step 0).
_TRAJECTORY_SOURCES = frozenset({"external", SCHEDULE_SOURCE})


def _in_trajectory(entry: LedgerEntry) -> bool:
    if entry.decision != "applied" or entry.module == "kernel" or entry.id is None:
        return False
    if entry.source in _TRAJECTORY_SOURCES:
        return True
    return entry.source == "config" and entry.event is not None


def schedule_from_ledger(
    entries: Iterable[LedgerEntry],
    *,
    source: Callable[[str, Mapping[str, Any]], Mapping[str, Any]] | None = None,
    policy: Policy = "best_effort",
) -> Schedule:
    """The trajectory of a run as a schedule: every applied op (from the command stream,
    an earlier schedule, or the desired-state file), at the step and event it was applied
    at, in ledger order. Entries that are not ops (kernel entries, auto-disables) and
    ops that failed or were ignored are left out.

    ``source(sha256, target)``: the target a replay should load for an op whose ledger
    entry names the captured source it used (a ``python_file`` load): e.g. that source
    copied into the app's config dir. Default: the target as recorded.
    """
    out: dict[str, ScheduleEntry] = {}
    for ledger_entry in entries:
        if not _in_trajectory(ledger_entry):
            continue
        op = op_from_entry(ledger_entry)
        step = ledger_entry.step
        if op is None or not _is_step(step):
            continue
        assert isinstance(step, int)
        target = op.target.to_dict() if op.target is not None else None
        sha = ledger_entry.payload.get("sha256")
        if source is not None and target is not None and isinstance(sha, str):
            target = dict(source(sha, target))
        entry = ScheduleEntry(
            step=step,
            event=ledger_entry.event,
            op=op.op,
            id=op.id,
            module=op.module,
            params=dict(op.params),
            target=target,
            init=dict(op.init),
            enabled=op.enabled,
        )
        out[entry_key(entry, out)] = entry
    return Schedule(entries=out, policy=policy)
