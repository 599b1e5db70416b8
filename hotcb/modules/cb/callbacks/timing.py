"""``timing``: rolling step-time statistics.

Measures the wall time between consecutive ``train_step_end`` events over the last
``window`` steps and, every ``every`` steps, logs
``[timing] step=N mean=12.34ms p50=12.10ms p95=15.02ms n=200``.

Hot parameters:
    every (int >= 1): report every this many steps.
    window (int >= 1): how many recent steps the statistics cover (changing it clears
        the window).

Example:
    >>> cb = TimingCallback(every=2, window=10)
    >>> for step in range(1, 5):
    ...     cb.handle("train_step_end", {"step": step, "log": lambda m: None})
    >>> sorted(cb.stats)
    ['count', 'mean', 'p50', 'p95', 'step']
"""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import Any

from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.params import check_known, positive_int

__all__ = ["TimingCallback"]


class TimingCallback:
    """Rolling mean / p50 / p95 of the time per training step."""

    def __init__(self, id: str = "timing", every: int = 50, window: int = 200) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.window = positive_int("window", window)
        self.stats: dict[str, float] = {}
        self._reset_window()

    def _reset_window(self) -> None:
        self._buf: deque[float] = deque(maxlen=self.window)  # the ring of recent step times
        self._last: float | None = None

    def set_params(self, **kwargs: Any) -> None:
        check_known("timing", kwargs, ("every", "window"))
        every = positive_int("every", kwargs.get("every", self.every))
        window = positive_int("window", kwargs.get("window", self.window))
        self.every = every
        if window != self.window:
            self.window = window
            self._reset_window()

    def on_attach(self, env: dict[str, Any]) -> None:
        self._last = None  # do not count the time the callback was away

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event != "train_step_end":
            if event == "train_begin":
                self._last = None
            return
        now = perf_counter()
        last = self._last
        self._last = now
        if last is None:
            return
        self._buf.append(now - last)
        step = env.get("step", 0)
        if step % self.every == 0:
            self._report(step, env)

    def _report(self, step: int, env: dict[str, Any]) -> None:
        samples = sorted(self._buf)
        n = len(samples)
        mean = sum(samples) / n
        p50 = samples[min(n - 1, int(0.50 * n))]
        p95 = samples[min(n - 1, int(0.95 * n))]
        self.stats = {"step": step, "count": n, "mean": mean, "p50": p50, "p95": p95}
        emit(
            env,
            f"[{self.id}] step={step} mean={mean * 1e3:.3f}ms p50={p50 * 1e3:.3f}ms "
            f"p95={p95 * 1e3:.3f}ms n={n}",
        )
