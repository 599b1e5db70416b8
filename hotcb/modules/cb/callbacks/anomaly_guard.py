"""``anomaly_guard``: catch non-finite losses and gradients, and loss spikes.

Checks, once per step:

* the loss in ``env["loss"]`` is finite;
* the loss is not a spike: not above ``spike_factor`` times the mean of the previous
  ``window`` finite losses (checked once 5 losses are known);
* every gradient of ``env["model"]`` is finite (the first offending parameter is named).

On an anomaly it logs the step, the kind and the first offending layer, and acts:

* ``action=log``: nothing more;
* ``action=skip``: zeroes every gradient, so the ``optimizer.step()`` that follows does
  not apply the bad update (emit ``after_backward`` between ``backward()`` and
  ``optimizer.step()`` for this to take effect);
* ``action=stop``: asks the loop to stop at its next safe point with
  :func:`hotcb.requests.request_stop`; the loop checks ``stop_requested(env)``.

``first`` holds the first anomaly seen, ``anomalies`` how many there were.

The reference project's parameters work too: ``every`` (check every N steps, default 1),
``paths`` (the env paths whose values must be finite, default ``[loss]``; dotted into
dicts and attributes; the spike check is on ``loss``), ``raise_on_trigger`` (true is
``action=stop``: hotcb never lets a callback's exception stop the loop, it asks the loop
to stop instead) and ``disable_after_trigger`` (do nothing after the first anomaly).

Hot parameters:
    action (log | skip | stop), spike_factor (number > 1), window (int >= 1), every
    (int >= 1), paths (list of env paths), raise_on_trigger (bool),
    disable_after_trigger (bool).

Example:
    >>> cb = AnomalyGuardCallback(action="stop")
    >>> env = {"step": 3, "loss": float("nan"), "log": print}
    >>> cb.handle("train_step_end", env)
    [anomaly_guard] step=3 non-finite loss (nan); action=stop
    >>> from hotcb.requests import stop_requested
    >>> stop_requested(env)
    'non-finite loss (nan) at step 3 (anomaly_guard)'
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.callbacks.env_path import MISSING, lookup
from hotcb.modules.cb.params import (
    boolean,
    check_known,
    choice,
    finite_above,
    positive_int,
    str_list,
)
from hotcb.requests import request_stop
from hotcb.scalar import to_scalar

__all__ = ["ACTIONS", "AnomalyGuardCallback"]

ACTIONS = ("log", "skip", "stop")
EVENTS = frozenset({"after_backward", "train_step_end"})
MIN_HISTORY = 5
_PARAMS = (
    "action",
    "disable_after_trigger",
    "every",
    "paths",
    "raise_on_trigger",
    "spike_factor",
    "window",
)


def _action(action: Any, raise_on_trigger: Any) -> str:
    """The action, with the reference's ``raise_on_trigger`` folded in (true: ``stop``)."""
    action = choice("action", action, ACTIONS)
    if raise_on_trigger is None:
        return action
    if boolean("raise_on_trigger", raise_on_trigger):
        if action == "skip":
            raise ValueError("raise_on_trigger=true is action=stop; give one of them")
        return "stop"
    return "log" if action == "stop" else action


class AnomalyGuardCallback:
    """Non-finite loss / gradients and loss spikes: log, skip the update, or stop."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("action", str, "log", "what to do on an anomaly", choices=ACTIONS),
        HotParam(
            "spike_factor", float, 10.0, "a loss above this x the recent mean is a spike", gt=1
        ),
        HotParam("window", int, 50, "how many recent losses the mean covers", ge=1),
        HotParam("every", int, 1, "check every N steps", ge=1),
        HotParam("paths", "list[str]", ["loss"], "env paths checked for non-finite values"),
        HotParam("raise_on_trigger", bool, False, "stop the run on an anomaly (action=stop)"),
        HotParam("disable_after_trigger", bool, False, "disable the guard after its first anomaly"),
    )

    events = EVENTS

    def __init__(
        self,
        id: str = "anomaly_guard",
        action: str = "log",
        spike_factor: float = 10.0,
        window: int = 50,
        every: int = 1,
        paths: list[str] | None = None,
        raise_on_trigger: bool | None = None,
        disable_after_trigger: bool = False,
    ) -> None:
        self.id = id
        self.action = _action(action, raise_on_trigger)
        self.spike_factor = finite_above("spike_factor", spike_factor, 1)
        self.window = positive_int("window", window)
        self.every = positive_int("every", every)
        self.paths = str_list("paths", ["loss"] if paths is None else paths)
        self.disable_after_trigger = boolean("disable_after_trigger", disable_after_trigger)
        self._losses: deque[float] = deque(maxlen=self.window)
        self._loss_step: int | None = None
        self._grad_step: int | None = None
        self.first: dict[str, Any] | None = None
        self.anomalies = 0

    @property
    def raise_on_trigger(self) -> bool:
        """The reference's name for ``action == "stop"``."""
        return self.action == "stop"

    def set_params(self, **kwargs: Any) -> None:
        check_known("anomaly_guard", kwargs, [p.name for p in self.hot_params])
        action = _action(kwargs.get("action", self.action), kwargs.get("raise_on_trigger"))
        factor = finite_above("spike_factor", kwargs.get("spike_factor", self.spike_factor), 1)
        window = positive_int("window", kwargs.get("window", self.window))
        every = positive_int("every", kwargs.get("every", self.every))
        paths = str_list("paths", kwargs.get("paths", self.paths))
        once = boolean(
            "disable_after_trigger", kwargs.get("disable_after_trigger", self.disable_after_trigger)
        )
        self.action, self.spike_factor = action, factor
        self.every, self.paths, self.disable_after_trigger = every, paths, once
        if window != self.window:
            self.window = window
            self._losses = deque(self._losses, maxlen=window)

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event not in EVENTS:
            return
        if self.disable_after_trigger and self.anomalies:
            return
        step = env.get("step", 0)
        if step % self.every:
            return
        model = env.get("model")
        if model is not None and step != self._grad_step:
            bad = self._first_bad_grad(model)
            if bad is not None:
                self._grad_step = step
                self._anomaly(env, step, "non-finite gradient", layer=bad)
            elif event == "after_backward" or any(p.grad is not None for p in model.parameters()):
                self._grad_step = step
        if event == "train_step_end" and step != self._loss_step:
            self._loss_step = step
            for path in self.paths:
                if path == "loss":
                    if "loss" in env:
                        self._check_loss(env, step)
                else:
                    self._check_path(env, step, path)

    def _check_path(self, env: dict[str, Any], step: int, path: str) -> None:
        value = lookup(env, path)
        if value is MISSING:
            return
        if hasattr(value, "detach"):
            import torch

            finite = bool(torch.isfinite(value.detach()).all())
        else:
            value = to_scalar(value)
            finite = not isinstance(value, float) or math.isfinite(value)
        if not finite:
            self._anomaly(env, step, f"non-finite {path}")

    @staticmethod
    def _first_bad_grad(model: Any) -> str | None:
        import torch

        for name, p in model.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return str(name)
        return None

    def _check_loss(self, env: dict[str, Any], step: int) -> None:
        loss = float(to_scalar(env["loss"]))
        if not math.isfinite(loss):
            self._anomaly(env, step, f"non-finite loss ({loss})")
            return
        if len(self._losses) >= MIN_HISTORY:
            mean = sum(self._losses) / len(self._losses)
            if mean > 0 and loss > self.spike_factor * mean:
                self._anomaly(
                    env, step, f"loss spike ({loss:.4g} > {self.spike_factor:g} x mean {mean:.4g})"
                )
        self._losses.append(loss)

    def _anomaly(self, env: dict[str, Any], step: int, kind: str, layer: str | None = None) -> None:
        self.anomalies += 1
        record = {"step": step, "kind": kind, "layer": layer, "action": self.action}
        if self.first is None:
            self.first = record
        where = f" in {layer}" if layer else ""
        emit(env, f"[{self.id}] step={step} {kind}{where}; action={self.action}")
        if self.action == "skip":
            model = env.get("model")
            if model is not None:
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.zero_()
        elif self.action == "stop":
            request_stop(env, f"{kind}{where} at step {step}", by=self.id)
