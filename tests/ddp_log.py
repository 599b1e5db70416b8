"""Reading what ranks printed: `[rank R] ...` lines, as the example and DDP tests write them."""

from __future__ import annotations

import re


def beats(out: str, rank: int, cb_id: str = "heartbeat") -> list[int]:
    """The steps at which ``cb_id`` (a heartbeat) printed on ``rank``."""
    return [int(s) for s in re.findall(rf"\[rank {rank}\] \[{cb_id}\] \S+ step=(\d+)", out)]


def applied(out: str, rank: int, what: str, world_size: int = 2) -> list[int]:
    """The steps at which ``rank`` reported applying ``what`` (e.g. "set heartbeat")."""
    pattern = rf"\[rank {rank}\] \[hotcb\] rank {rank}/{world_size} step (\d+): {what} applied"
    return [int(s) for s in re.findall(pattern, out)]


def applied_once_on_both(out: str, what: str) -> int:
    """The one step at which both ranks of a 2-rank job applied ``what``; fails otherwise."""
    steps = [applied(out, rank, what) for rank in (0, 1)]
    assert steps[0] == steps[1] and len(steps[0]) == 1, (steps, out[-3000:])
    return steps[0][0]
