"""The run's answer to a command: wait for its ledger entry, and say what happened.

A command the CLI queues is one line of ``hotcb.commands.jsonl``; its locked append knows
the byte offset just past that line (:meth:`hotcb.stream.CommandStream.append`). The run
records what it did with the line in ``hotcb.applied.jsonl``, in an entry whose ``offset``
is that offset: that entry is the answer (``applied at step N``, or the failure and why).
The CLI reads only the part of the ledger written after its append, a few times per
second, until the entry is there or ``--timeout`` seconds have passed.

No wait when it cannot be answered: a run that is not live (the command is queued for
when a run starts in the dir), a run in this very process or one that started it (it
answers at its next ``apply``, which cannot happen while this waits), or ``--no-wait``. A run that does not
answer in time is described by :mod:`hotcb.cli.liveness_view`: stepping, stalled (a long
validation) or dead.

Example:
    >>> import os, tempfile
    >>> from hotcb.kernel import HotKernel
    >>> from hotcb.stream import CommandStream
    >>> kernel = HotKernel(run_dir=tempfile.mkdtemp(), poll_interval=0, register=False)
    >>> tail = LedgerTail(kernel.run_dir.ledger)
    >>> offset = CommandStream(kernel.run_dir.commands).append({"op": "disable", "id": "hb"})
    >>> kernel.apply({"step": 7}, ["train_step_end"])
    >>> answer = wait_for_answers([Pending(kernel.run_dir, offset, tail)], timeout=5)[0]
    >>> answer.outcome, answer.step, answer.describe()[:40]
    ('failed', 7, "failed at step 7: unknown callback id 'h")
    >>> kernel.close()
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from hotcb.cli.liveness_view import RunProgress, run_progress
from hotcb.errors import format_error
from hotcb.files import open_regular
from hotcb.ledger import LedgerEntry
from hotcb.liveness import HOSTNAME
from hotcb.rundir import RunDir
from hotcb.state import is_live, read_state

__all__ = [
    "DEFAULT_TIMEOUT",
    "Answer",
    "AnswerOptions",
    "LedgerTail",
    "Pending",
    "answer_options",
    "unwaited",
    "wait_for_answers",
]

#: How long a command waits for the run's answer by default (seconds).
DEFAULT_TIMEOUT = 5.0
#: How often the ledger is looked at while waiting (seconds; the first looks are sooner).
_POLL = 0.05
#: How often the run's process is checked while waiting (seconds).
_LIVENESS_EVERY = 0.5

F = TypeVar("F", bound=Callable[..., Any])
_META_KEY = "hotcb.answer"


@dataclass(frozen=True)
class AnswerOptions:
    """How a command waits for its answer: ``--no-wait``, ``--timeout``, ``--dry-run``."""

    wait: bool = True
    timeout: float = DEFAULT_TIMEOUT
    dry_run: bool = False

    @classmethod
    def current(cls) -> AnswerOptions:
        """The options of the command being run (the defaults outside a command)."""
        ctx = click.get_current_context(silent=True)
        found = ctx.meta.get(_META_KEY) if ctx is not None else None
        return found if isinstance(found, AnswerOptions) else cls()


def _check_timeout(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number of seconds, got {value:g}")
    return value


def answer_options(*, timeout_option: bool = True) -> Callable[[F], F]:
    """Decorator for a command that queues: adds ``--no-wait``, ``--timeout SECONDS``
    (also spelled ``--wait SECONDS``; only ``--wait`` with ``timeout_option=False``, for
    ``cb load`` whose ``--timeout`` is the watchdog budget) and ``--dry-run``, and hands
    them to :meth:`AnswerOptions.current` instead of to the command's function. Put it
    right under the ``@group.command(...)`` line."""
    names = ("--timeout", "--wait") if timeout_option else ("--wait",)

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(
            *args: Any, no_wait: bool, wait_seconds: float | None, dry_run: bool, **kwargs: Any
        ) -> Any:
            if no_wait and wait_seconds is not None:
                raise click.UsageError(f"give {names[0]} SECONDS or --no-wait, not both")
            ctx = click.get_current_context()
            ctx.meta[_META_KEY] = AnswerOptions(
                wait=not no_wait,
                timeout=DEFAULT_TIMEOUT if wait_seconds is None else wait_seconds,
                dry_run=dry_run,
            )
            return f(*args, **kwargs)

        options = [
            click.option(
                "--dry-run",
                is_flag=True,
                help="Check the command and show it with the override delta it would add; "
                "queue nothing.",
            ),
            click.option(
                "--no-wait", is_flag=True, help="Only queue it: do not wait for the run's answer."
            ),
            click.option(
                *names,
                "wait_seconds",
                type=float,
                default=None,
                metavar="SECONDS",
                callback=_check_timeout,
                help=f"How long to wait for the run's answer (default {DEFAULT_TIMEOUT:g} s).",
            ),
        ]
        decorated: Any = command
        for option in options:
            decorated = option(decorated)
        return decorated

    return decorate


@dataclass(frozen=True)
class Answer:
    """What became of one queued command in one run.

    ``outcome``: the ledger's decision (``applied``, ``failed``, ``ignored``), or
    ``queued`` (not waited for: ``note`` says why) or ``unanswered`` (waited for, in vain:
    ``note`` says how the run is).
    """

    outcome: str
    run_dir: str
    step: Any = None
    error: str | None = None
    seq: int | None = None
    note: str | None = None
    progress: RunProgress | None = None

    @property
    def failed(self) -> bool:
        """True for an answer the command must exit 1 on (failed, or no answer)."""
        return self.outcome in ("failed", "unanswered")

    def describe(self) -> str:
        """``applied at step N``, ``failed at step N: why``, or what the note says."""
        if self.outcome in ("applied", "failed", "ignored"):
            why = f": {self.error}" if self.error else ""
            return f"{self.outcome} at step {self.step}{why}"
        return f"{self.outcome}: {self.note}" if self.note else self.outcome

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``: outcome, step, error, seq (the ledger entry), note, run."""
        return {
            "outcome": self.outcome,
            "step": self.step,
            "error": self.error,
            "seq": self.seq,
            "note": self.note,
            "run": self.progress.to_dict() if self.progress is not None else None,
        }


def _from_entry(run: RunDir, entry: LedgerEntry) -> Answer:
    error = format_error(entry.error, entry.location) if entry.error else None
    return Answer(entry.decision, str(run.path), entry.step, error, entry.seq)


class LedgerTail:
    """The entries appended to a ledger after this was made (read from the byte it then
    ended at; from the top again if the file shrank: it was replaced)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.pos = self._size()
        self._partial = b""

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def new_entries(self) -> list[LedgerEntry]:
        """The complete, valid entries written since the last call."""
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except OSError:
            return []
        try:
            size = os.fstat(fd).st_size
            if size < self.pos:
                self.pos, self._partial = 0, b""
            data = os.pread(fd, size - self.pos, self.pos) if size > self.pos else b""
        finally:
            os.close(fd)
        self.pos += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return [entry for entry in map(_entry, lines) if entry is not None]


def _entry(line: bytes) -> LedgerEntry | None:
    try:
        return LedgerEntry.from_dict(json.loads(line))
    except (ValueError, RecursionError):
        return None


@dataclass
class Pending:
    """A command appended to ``run`` (its line ends at ``offset``); ``tail`` was made
    before the append."""

    run: RunDir
    offset: int
    tail: LedgerTail


def unwaited(run: RunDir, state: dict[str, Any] | None, options: AnswerOptions) -> Answer | None:
    """The answer of a command queued to ``run`` that is not waited for (and why), or None
    if its answer is to be waited for."""
    progress = run_progress(state)
    where = str(run.path)
    if not progress.live:
        if state is None:
            why = "no run has used this dir yet"
        else:
            why = f"the last run here {'' if progress.closed else 'is '}{progress.describe()}"
        note = f"no live run: applied when a run starts here; {why}"
        return Answer("queued", where, note=note, progress=progress)
    if not options.wait:
        return Answer("queued", where, note="--no-wait: not waiting for the run's answer")
    if _this_process(state):
        note = "the run is this process (or started it): it applies it at its next safe point"
        return Answer("queued", where, note=note, progress=progress)
    return None


def _this_process(state: dict[str, Any] | None) -> bool:
    """True if the run is this process or one of its ancestors (a training loop that runs
    ``hotcb`` itself waits for it to end before it reaches its next safe point)."""
    state = state or {}
    if state.get("host") not in (None, HOSTNAME):
        return False
    return state.get("pid") in _ancestry()


def _ancestry(depth: int = 32) -> set[int]:
    """This process's pid and its parents' (Linux: from ``/proc``; elsewhere the parent)."""
    pids = {os.getpid(), os.getppid()}
    pid = os.getppid()
    for _ in range(depth):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read()
            pid = int(data[data.rfind(b")") + 2 :].split()[1])  # field 4: the parent
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        pids.add(pid)
    return pids


def wait_for_answers(pending: Sequence[Pending], timeout: float) -> list[Answer]:
    """Wait (at most ``timeout`` seconds in all) for each run's ledger entry of its
    command; an ``unanswered`` answer for a run that did not give one in time or whose
    process ended first. In the order of ``pending``."""
    answers: dict[int, Answer] = {}
    start = time.monotonic()
    deadline = start + timeout
    next_check = start + _LIVENESS_EVERY
    pause = 0.005
    while True:
        for i, p in enumerate(pending):
            if i in answers:
                continue
            entry = next((e for e in p.tail.new_entries() if e.offset == p.offset), None)
            if entry is not None:
                answers[i] = _from_entry(p.run, entry)
        if len(answers) == len(pending):
            break
        now = time.monotonic()
        if now >= next_check or now >= deadline:
            next_check = now + _LIVENESS_EVERY
            for i, p in enumerate(pending):
                if i in answers:
                    continue
                state = read_state(p.run.state)
                if not is_live(state) or now >= deadline:
                    answers[i] = _unanswered(p.run, state, timeout)
            if len(answers) == len(pending):
                break
        time.sleep(pause)
        pause = min(_POLL, pause * 2)
    return [answers[i] for i in range(len(pending))]


def _unanswered(run: RunDir, state: dict[str, Any] | None, timeout: float) -> Answer:
    progress = run_progress(state)
    if not progress.live:
        note = (
            f"the run's process ended before it answered ({progress.describe()}); the "
            f"command stays queued: a run resumed in {run.path} applies it"
        )
    else:
        note = (
            f"no answer from the run within {timeout:g} s: it is {progress.describe()}; the "
            "command stays queued and is applied at its next safe point (see: hotcb log)"
        )
    return Answer("unanswered", str(run.path), progress.step, note=note, progress=progress)
