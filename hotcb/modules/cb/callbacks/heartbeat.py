"""``heartbeat``: a liveness line every N steps.

Logs ``[heartbeat] train_step_end step=N`` whenever one of ``events`` fires at a step
that is a multiple of ``every`` (``[heartbeat] <message> train_step_end step=N`` with a
``message``).

Hot parameters:
    every (int >= 1): beat every this many steps.
    events (list of event names): which events beat (default ``[train_step_end]``).
    message (text): put in every beat (default none; the reference project's ``message``).

Example:
    >>> hb = HeartbeatCallback(every=2)
    >>> for step in range(1, 5):
    ...     hb.handle("train_step_end", {"step": step, "log": print})
    [heartbeat] train_step_end step=2
    [heartbeat] train_step_end step=4
    >>> hb.set_params(message="alive")
    >>> hb.handle("train_step_end", {"step": 6, "log": print})
    [heartbeat] alive train_step_end step=6
"""

from __future__ import annotations

from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.params import check_known, positive_int, str_list

__all__ = ["HeartbeatCallback"]


def _message(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"message must be text, got {value!r}")
    return value


def _events(value: Any) -> frozenset[str]:
    if isinstance(value, frozenset):
        value = sorted(value)
    events = frozenset(str_list("events", value))
    if not events:
        raise ValueError("events must name at least one event, got []")
    return events


class HeartbeatCallback:
    """Logs ``[<id>] <event> step=<N>`` every ``every`` steps.

    ``events`` is both its hot parameter and its declaration to the controller (see
    :func:`~hotcb.modules.cb.protocol.declared_events`): it is only called for those.
    """

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 100, "beat every N steps", ge=1),
        HotParam("events", "list[str]", ["train_step_end"], "the events that beat", nonempty=True),
        HotParam("message", str, "", "text put in every beat"),
    )

    def __init__(
        self,
        id: str = "heartbeat",
        every: int = 100,
        events: list[str] | None = None,
        message: str = "",
    ) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.events = _events(events or ["train_step_end"])
        self.message = _message(message)
        self.beats = 0

    def set_params(self, **kwargs: Any) -> None:
        check_known("heartbeat", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        events = _events(kwargs.get("events", self.events))
        message = _message(kwargs.get("message", self.message))
        self.every, self.events, self.message = every, events, message

    def handle(self, event: str, env: dict[str, Any]) -> None:
        # the hot path: most steps are not a beat, so the step is checked first
        try:
            step = env["step"]
        except KeyError:
            step = 0
        if step % self.every == 0 and event in self.events:
            self.beats += 1
            text = f"{self.message} " if self.message else ""
            emit(env, f"[{self.id}] {text}{event} step={step}")
