"""Applying a schedule in a running kernel: ops due at a step, and the ones a run missed.

A kernel holds one :class:`ScheduleRunner`: the entries of the run's
:class:`~hotcb.schedule.Schedule` (``hotcb.schedule`` in the config) and the ops the CLI
asked for at a later step (``hotcb cb set ... --at-step N``). The kernel asks it only when
the loop's step has reached :attr:`ScheduleRunner.next_due` (one comparison per ``apply``,
and none at all while nothing is pending); :meth:`ScheduleRunner.take` then says what to
apply at this (step, event) and what was missed.

An entry applies at the first ``apply`` whose ``env["step"]`` is its step and whose first
event is its event (an entry whose event is None: ``apply`` without events; an op from the
CLI: the first ``apply`` at that step, whatever the event). An entry whose step the loop
passed without applying it is missed then; one the run never reaches is missed at close.
What a miss is depends on the policy (see :meth:`ScheduleRunner.take`).

Before a run uses its schedule, :func:`effective_schedule` turns the configured one into
the one it applies (the adjustments); the result is written to the run dir as
``hotcb.schedule.yaml`` (:func:`write_effective_schedule`).

Example:
    >>> from hotcb.schedule import Schedule
    >>> s = Schedule.from_config({"a": {"step": 3, "event": "train_step_end", "op": "disable",
    ...     "id": "hb"}})
    >>> runner = ScheduleRunner()
    >>> runner.load(s)
    []
    >>> runner.next_due
    3
    >>> runner.take(3, "val_end")
    ([], [])
    >>> [(d.key, d.op.op) for d in runner.take(3, "train_step_end")[0]]
    [('a', 'disable')]
    >>> runner.next_due
    inf
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotcb.files import write_private
from hotcb.ops import CommandError, Op
from hotcb.schedule import SCHEDULE_SOURCE, Policy, Schedule
from hotcb.schedule_adjust import adjust_schedule
from hotcb.schedule_file import ENTRIES_SUFFIX, INLINE_MAX, entries_jsonl, file_node

__all__ = [
    "ANY_EVENT",
    "SCHEDULE_FILE",
    "Due",
    "ScheduleRunner",
    "effective_schedule",
    "schedule_yaml",
    "write_effective_schedule",
]

#: The file in the run dir that holds the schedule the run applies.
SCHEDULE_FILE = "hotcb.schedule.yaml"
#: The event of an op that applies at the first safe point of its step (``--at-step``).
ANY_EVENT = "*"
#: How many pending / missed entries ``hotcb.state.json`` lists (the counts are complete).
SHOWN = 20


def effective_schedule(schedule: Schedule) -> Schedule:
    """The schedule a run applies, from the one its config holds: THE place where the
    schedule adjustments (``hotcb.schedule.adjust``, see :mod:`hotcb.schedule_adjust`) are
    applied. Raises :class:`~hotcb.schedule.ScheduleError` for a bad rule.

    >>> s = Schedule()
    >>> effective_schedule(s) is s
    True
    """
    return adjust_schedule(schedule)


def write_effective_schedule(run_dir: Path, schedule: Schedule) -> Path:
    """Write ``schedule`` as ``<run_dir>/hotcb.schedule.yaml`` (mode 0600, never through a
    symlink) and return the path. It is the ``hotcb.schedule`` node: a run started with
    ``+hotcb/schedule=...`` from a copy of it applies the same ops. A schedule of more than
    :data:`~hotcb.schedule_file.INLINE_MAX` entries has them in
    ``hotcb.schedule.entries.jsonl`` beside it, named by its absolute path."""
    path = run_dir / SCHEDULE_FILE
    header = "# The schedule this run applies (after adjustments); the hotcb.schedule node.\n"
    node: Schedule | dict[str, Any] = schedule
    if len(schedule) > INLINE_MAX:
        entries = path.with_name(path.stem + ENTRIES_SUFFIX)
        data = entries_jsonl(schedule)
        write_private(entries, data, replace=True)
        node = file_node(schedule, str(entries), data)
    write_private(path, (header + schedule_yaml(node)).encode("utf-8"), replace=True)
    return path


#: libyaml's emitter when PyYAML has it (10x faster than the pure-Python one).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def schedule_yaml(schedule: Schedule | Mapping[str, Any]) -> str:
    """The ``hotcb.schedule`` node of ``schedule`` (or that node) as block YAML, in
    mapping order.

    >>> print(schedule_yaml(Schedule()), end="")
    policy: best_effort
    step_offset: 0
    """
    return yaml.dump(
        schedule.to_config() if isinstance(schedule, Schedule) else dict(schedule),
        Dumper=_DUMPER,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )


@dataclass(frozen=True)
class Due:
    """One pending op: at ``step`` (and ``event``; :data:`ANY_EVENT`: any) apply ``op``.
    ``key``: its schedule key (None for an op from the CLI); ``source``: the ledger source
    of its entry (``schedule``, or ``external`` for the CLI's)."""

    step: int
    order: int
    event: str | None
    op: Op
    key: str | None = None
    source: str = SCHEDULE_SOURCE

    def describe(self) -> dict[str, Any]:
        """What ``hotcb status`` shows of it."""
        out: dict[str, Any] = {"step": self.step, "event": self.event, "key": self.key}
        out.update(self.op.to_dict())
        out.pop("at_step", None)
        return out


def _sort_key(due: Due) -> tuple[int, int]:
    # pending is kept in descending order, the next one due last (pop is O(1))
    return (-due.step, -due.order)


@dataclass
class ScheduleRunner:
    """The pending ops of one run, next due first; see the module docstring."""

    policy: Policy = "best_effort"
    #: descending by (step, order): the next one due is the last
    pending: list[Due] = field(default_factory=list)
    #: what was missed so far: :meth:`Due.describe` plus ``reason``
    missed: list[dict[str, Any]] = field(default_factory=list)
    next_due: float = math.inf
    _order: int = 0

    def load(self, schedule: Schedule) -> list[str]:
        """Add every entry of ``schedule`` (its ``policy`` becomes the runner's); the
        problems of entries whose op is invalid (each ``hotcb.schedule.<key>: ...``), which
        are left out."""
        self.policy = schedule.policy
        problems: list[str] = []
        added: list[Due] = []
        for key, entry in schedule.ordered():
            try:
                op = entry.to_op()
            except CommandError as exc:
                problems.append(f"hotcb.schedule.{key}: {exc}")
                continue
            added.append(Due(entry.step, self._next_order(), entry.event, op, key))
        self.pending.extend(added)
        self.pending.sort(key=_sort_key)
        self._update()
        return problems

    def add(self, op: Op, step: int, *, event: str | None = ANY_EVENT) -> Due:
        """Add one op from the CLI, due at ``step`` (after those already due then)."""
        due = Due(step, self._next_order(), event, op, None, "external")
        bisect.insort(self.pending, due, key=_sort_key)
        self._update()
        return due

    def take(self, step: Any, event: str | None) -> tuple[list[Due], list[tuple[Due, str]]]:
        """What to do at this safe point: the ops to apply now (in order), and the ones
        missed, each with the reason (their step passed without their event). The kernel
        records a missed one as ``failed`` under ``strict`` and as ``ignored`` under
        ``best_effort``; either way it is not applied late."""
        now: list[Due] = []
        missed: list[tuple[Due, str]] = []
        kept: list[Due] = []
        pending = self.pending
        while pending and pending[-1].step <= step:
            due = pending.pop()
            if due.step < step:
                reason = (
                    f"step {due.step} passed without the event {due.event!r} "
                    f"(the run is at step {step})"
                )
                missed.append((due, reason))
            elif due.event == ANY_EVENT or due.event == event:
                now.append(due)
            else:
                kept.append(due)
        pending.extend(reversed(kept))
        self._update()
        return now, missed

    def remaining(self, step: Any) -> list[tuple[Due, str]]:
        """Everything still pending (the run is closing at ``step``), each with the reason,
        in order; the runner is empty afterwards."""
        out = [
            (due, f"the run ended at step {step}, before step {due.step}")
            for due in reversed(self.pending)
        ]
        self.pending.clear()
        self._update()
        return out

    def note_missed(self, due: Due, reason: str) -> None:
        """Remember a missed entry for ``hotcb status``."""
        self.missed.append({**due.describe(), "reason": reason})

    def status(self) -> dict[str, Any]:
        """The ``schedule`` section of ``hotcb.state.json``: the policy, how many are
        pending and the next :data:`SHOWN` of them, how many were missed and the first
        :data:`SHOWN` of those."""
        return {
            "policy": self.policy,
            "pending_count": len(self.pending),
            "pending": [due.describe() for due in reversed(self.pending[-SHOWN:])],
            "missed_count": len(self.missed),
            "missed": self.missed[:SHOWN],
        }

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _update(self) -> None:
        self.next_due = self.pending[-1].step if self.pending else math.inf
