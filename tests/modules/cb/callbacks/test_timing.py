"""``timing`` measures the time between step ends, and not the gaps between them."""

from __future__ import annotations

import re
import time
from typing import Any

from hotcb.modules.cb.callbacks.timing import TimingCallback

STEP = 0.01  # seconds each fake step sleeps: time.sleep waits at least that long


def run_steps(cb: TimingCallback, env: dict[str, Any], first: int, count: int) -> None:
    for step in range(first, first + count):
        time.sleep(STEP)
        cb.handle("train_step_end", {**env, "step": step})


def test_step_times_cover_steps_and_skip_train_begin_and_reattach_gaps() -> None:
    lines: list[str] = []
    env: dict[str, Any] = {"log": lines.append}
    cb = TimingCallback(every=10**9, window=50)
    start = time.perf_counter()
    cb.handle("train_begin", env)
    run_steps(cb, env, 1, 5)  # 4 step times: the first step end only starts the clock
    time.sleep(0.2)  # e.g. validation, then a new epoch
    cb.handle("train_begin", env)
    run_steps(cb, env, 6, 3)  # 2 more
    time.sleep(0.2)  # disabled for a while, then enabled again
    cb.on_attach(env)
    run_steps(cb, env, 9, 2)  # 1 more
    elapsed = time.perf_counter() - start

    times = cb.step_times()
    assert len(times) == 4 + 2 + 1
    assert all(t >= STEP * 0.95 for t in times)
    assert sum(times) <= elapsed - 0.4  # neither gap is in there
    assert lines == []  # every=10**9: no report yet


def test_the_window_holds_the_last_steps_and_the_report_states_them() -> None:
    lines: list[str] = []
    env: dict[str, Any] = {"log": lines.append}
    cb = TimingCallback(every=4, window=3)
    run_steps(cb, env, 1, 8)
    assert len(cb.step_times()) == 3
    assert cb.stats["step"] == 8 and cb.stats["count"] == 3
    assert STEP * 0.95 <= cb.stats["p50"] <= cb.stats["p95"]
    assert cb.stats["mean"] == sum(cb.step_times()) / 3
    pattern = r"\[timing\] step=(\d+) mean=[\d.]+ms p50=[\d.]+ms p95=[\d.]+ms n=(\d+)"
    assert [re.fullmatch(pattern, line).groups() for line in lines] == [  # type: ignore[union-attr]
        ("4", "3"),
        ("8", "3"),
    ]
    cb.set_params(window=2)  # a new window starts empty
    assert cb.step_times() == []
    run_steps(cb, env, 9, 4)
    assert len(cb.step_times()) == 2 and cb.stats["count"] == 2
