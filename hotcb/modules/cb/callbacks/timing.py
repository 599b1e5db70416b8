"""``timing``: rolling step-time statistics.

Measures the wall time between consecutive ``train_step_end`` events over the last
``window`` steps and, every ``every`` steps, logs
``[timing] step=N mean=12.34ms p50=12.10ms p95=15.02ms n=200``.

A step right after ``train_begin`` or after the callback was (re)attached (loaded,
reloaded, re-enabled) has no time: the gap before it is not a training step.

Hot parameters:
    every (int >= 1): report every this many steps.
    window (int >= 1): how many recent steps the statistics cover (changing it clears
        the window).

Example:
    >>> cb = TimingCallback(every=2, window=10)
    >>> for step in range(1, 5):
    ...     cb.handle("train_step_end", {"step": step, "log": lambda m: None})
    >>> sorted(cb.stats), cb.stats["count"]
    (['count', 'mean', 'p50', 'p95', 'step'], 3)
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from time import perf_counter
from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.params import check_known, positive_int

__all__ = ["TimingCallback"]

#: In the ring of step-end times: "no step ended just before this one".
_GAP = None


class TimingCallback:
    """Rolling mean / p50 / p95 of the time per training step."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 50, "report every N steps", ge=1),
        HotParam(
            "window",
            int,
            200,
            "how many recent steps the statistics cover (a change clears them)",
            ge=1,
        ),
    )

    events = ("train_step_end", "train_begin")

    def __init__(self, id: str = "timing", every: int = 50, window: int = 200) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.window = positive_int("window", window)
        self.stats: dict[str, float] = {}
        self._reset_window()

    def _reset_window(self) -> None:
        # The hot path only appends the time a step ended (one C call); the step times
        # are the differences of neighbours, computed when reporting. ``window + 1``
        # times give ``window`` step times.
        self._ends: deque[float | None] = deque(maxlen=self.window + 1)
        self._append = self._ends.append

    def set_params(self, **kwargs: Any) -> None:
        check_known("timing", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        window = positive_int("window", kwargs.get("window", self.window))
        self.every = every
        if window != self.window:
            self.window = window
            self._reset_window()

    def on_attach(self, env: dict[str, Any]) -> None:
        self._append(_GAP)  # do not count the time the callback was away

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event == "train_step_end":
            self._append(perf_counter())
            try:
                step = env["step"]
            except KeyError:  # cheaper than env.get when the step is there (the usual case)
                step = 0
            if step % self.every == 0:
                self._report(step, env)
        elif event == "train_begin":
            self._append(_GAP)

    def step_times(self) -> list[float]:
        """The step times (seconds) in the window, oldest first."""
        return [b - a for a, b in pairwise(self._ends) if a is not None and b is not None]

    def _report(self, step: int, env: dict[str, Any]) -> None:
        samples = sorted(self.step_times())
        n = len(samples)
        if not n:
            return
        mean = sum(samples) / n
        p50 = samples[min(n - 1, int(0.50 * n))]
        p95 = samples[min(n - 1, int(0.95 * n))]
        self.stats = {"step": step, "count": n, "mean": mean, "p50": p50, "p95": p95}
        emit(
            env,
            f"[{self.id}] step={step} mean={mean * 1e3:.3f}ms p50={p50 * 1e3:.3f}ms "
            f"p95={p95 * 1e3:.3f}ms n={n}",
        )
