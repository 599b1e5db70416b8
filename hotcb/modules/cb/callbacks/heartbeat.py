"""``heartbeat``: a liveness line every N steps.

Logs ``[heartbeat] train_step_end step=N`` whenever one of ``events`` fires at a step
that is a multiple of ``every``.

Hot parameters:
    every (int >= 1): beat every this many steps.
    events (list of event names): which events beat (default ``[train_step_end]``).

Example:
    >>> hb = HeartbeatCallback(every=2)
    >>> for step in range(1, 5):
    ...     hb.handle("train_step_end", {"step": step, "log": print})
    [heartbeat] train_step_end step=2
    [heartbeat] train_step_end step=4
"""

from __future__ import annotations

from typing import Any

from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.params import check_known, positive_int, str_list

__all__ = ["HeartbeatCallback"]


class HeartbeatCallback:
    """Logs ``[<id>] <event> step=<N>`` every ``every`` steps."""

    def __init__(
        self, id: str = "heartbeat", every: int = 100, events: list[str] | None = None
    ) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.events = frozenset(str_list("events", events or ["train_step_end"]))
        self.beats = 0

    def set_params(self, **kwargs: Any) -> None:
        check_known("heartbeat", kwargs, ("every", "events"))
        every = positive_int("every", kwargs.get("every", self.every))
        events = frozenset(str_list("events", kwargs.get("events", sorted(self.events))))
        self.every, self.events = every, events

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event not in self.events:
            return
        step = env.get("step", 0)
        if step % self.every == 0:
            self.beats += 1
            emit(env, f"[{self.id}] {event} step={step}")
