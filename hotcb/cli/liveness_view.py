"""How a run is doing, in a few words: ``step 120, seen 0.4 s ago``, ``stalled 45 s``, dead.

A live training process rewrites ``hotcb.state.json`` at least every ``state_interval``
(1 s by default, recorded in the file) while its loop calls ``apply``, with the step it is
at and the time (``updated``). So the age of that write tells a run that is stepping from
one that is *stalled* (no write for :func:`stalled_after` seconds: (its process runs, but its loop has not reached a safe point for a while: a long
validation, a checkpoint, a hang) and from one that is *dead* (its process is gone without
closing: SIGKILL, OOM), which :mod:`hotcb.liveness` tells by pid and host.

Shared by the commands that wait for a run's answer and by ``hotcb status``.

Example:
    >>> import os
    >>> state = {"pid": os.getpid(), "step": 120, "updated": 1000.0}
    >>> run_progress(state, now=1000.4).describe()
    'step 120, seen 0.4 s ago'
    >>> run_progress(state, now=1045.0).describe()
    'stalled 45 s at step 120 (its process runs; a long validation or checkpoint?)'
    >>> run_progress({**state, "closed": True}, now=1180.0).describe()
    'ended at step 120, 3 min ago'
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from hotcb.state import is_live

__all__ = ["RunProgress", "format_age", "run_progress", "stalled_after"]


def stalled_after(state: dict[str, Any]) -> float:
    """After how many seconds without a state write a live run counts as stalled: three
    of its ``state_interval`` s (1 s if the state does not say) and half a second.

    >>> stalled_after({}), stalled_after({"state_interval": 0.1})
    (3.5, 0.8)
    """
    interval = state.get("state_interval")
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval < 0:
        interval = 1.0
    return round(3 * float(interval) + 0.5, 3)


def format_age(seconds: float) -> str:
    """A duration as a person reads it: ``0.4 s``, ``45 s``, ``3 min``, ``2.5 h``.

    >>> [format_age(s) for s in (0.42, 45.2, 200, 9000)]
    ['0.4 s', '45 s', '3 min', '2.5 h']
    """
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: its process alive or not, its last step, and how long ago its
    state file was last written (None: the state does not say)."""

    live: bool
    closed: bool
    pid: int | None
    step: Any
    seen_ago: float | None
    #: :func:`stalled_after` of its state
    stalled_after: float = 3.5

    @property
    def stalled(self) -> bool:
        """Live, but its loop has not written its state for over :attr:`stalled_after` s."""
        return self.live and self.seen_ago is not None and self.seen_ago > self.stalled_after

    @property
    def dead(self) -> bool:
        """Not live and not closed: its process ended without closing the run."""
        return not self.live and not self.closed

    def describe(self) -> str:
        """``step N, seen X ago`` / ``stalled X at step N (...)`` / ``ended ...`` / ``dead ...``."""
        ago = format_age(self.seen_ago) if self.seen_ago is not None else None
        if self.stalled:
            assert ago is not None
            return (
                f"stalled {ago} at step {self.step} "
                "(its process runs; a long validation or checkpoint?)"
            )
        if self.live:
            return f"step {self.step}, seen {ago} ago" if ago else f"step {self.step}"
        when = f", {ago} ago" if ago else ""
        if self.closed:
            return f"ended at step {self.step}{when}"
        return f"dead: process {self.pid} is gone; last seen at step {self.step}{when}"

    def to_dict(self) -> dict[str, Any]:
        """The fields, with ``stalled`` and ``dead``, for ``--json``."""
        return {**asdict(self), "stalled": self.stalled, "dead": self.dead}


def run_progress(state: dict[str, Any] | None, now: float | None = None) -> RunProgress:
    """The :class:`RunProgress` of a run whose ``hotcb.state.json`` is ``state``."""
    state = state or {}
    now = time.time() if now is None else now
    updated = state.get("updated")
    seen = now - updated if isinstance(updated, (int, float)) else None
    pid = state.get("pid")
    return RunProgress(
        live=is_live(state),
        closed=bool(state.get("closed")),
        pid=pid if isinstance(pid, int) else None,
        step=state.get("step"),
        seen_ago=seen,
        stalled_after=stalled_after(state),
    )
