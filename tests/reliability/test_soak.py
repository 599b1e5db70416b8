"""Soak: 200,000 steps with 20,000 commands spread through them (one every 10 steps).

Every command is applied exactly once and in order, memory stays flat (RSS grows by less
than 20 MiB per million steps, i.e. about 20 bytes a step or 200 bytes a command), the
ledger grows linearly. Prints steps/s, commands/s and RSS before/after (run with -s to see
them). The full soak, 1,000,000 steps with 100,000 commands and the same checks:
``HOTCB_SOAK_STEPS=1000000 python -m pytest -s -n 0 tests/reliability/test_soak.py``.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op
from hotcb.stream import CommandStream
from tests.helpers import wait_for

pytestmark = pytest.mark.slow(2)

STEPS = int(os.environ.get("HOTCB_SOAK_STEPS", "200000"))
COMMANDS = STEPS // 10
#: the RSS growth allowed: 20 MiB for a million steps, in proportion to the steps run
RSS_GROWTH_MIB = 20 * STEPS / 1_000_000


class Counter:
    """Counts the ``set`` commands it receives and notes any that arrive out of order
    (an assertion here would be caught by hotcb, which never lets a callback stop
    training: the test checks ``errors`` instead)."""

    def __init__(self, id: str = "counter") -> None:
        self.id = id
        self.last = -1
        self.count = 0
        self.errors: list[str] = []

    def handle(self, event: str, env: dict[str, Any]) -> None:
        pass

    def set_params(self, **kw: Any) -> None:
        if kw.get("n") != self.last + 1:
            self.errors.append(f"set n={kw.get('n')!r} arrived after n={self.last}")
        self.last = kw.get("n", self.last)
        self.count += 1


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_soak(tmp_path: Path) -> None:
    sys.modules[__name__].Counter = Counter
    kernel = HotKernel(run_dir=tmp_path / "soak", register=False)  # default 50 ms polling
    kernel.submit(Op(op="load", id="counter", target=CallbackTarget("module", __name__, "Counter")))
    for cb, path, symbol in (
        ("timing", "timing", "TimingCallback"),
        ("heartbeat", "heartbeat", "HeartbeatCallback"),
    ):
        kernel.submit(
            Op(
                op="load",
                id=cb,
                init={"every": 10**9},
                target=CallbackTarget("module", f"hotcb.modules.cb.callbacks.{path}", symbol),
            )
        )
    stream = CommandStream(kernel.run_dir.commands)
    env: dict[str, Any] = {"step": 0, "epoch": 0, "loss": 0.0}
    events = ["train_step_end"]
    sizes: list[int] = []
    rss_before = rss_mib()
    t0 = time.perf_counter()
    n = 0
    counter = kernel.modules["cb"].controller.get("counter")
    assert isinstance(counter, Counter)

    def drain(count: int) -> bool:
        kernel.apply(env, events)
        return counter.count >= count or bool(counter.errors)

    for step in range(1, STEPS + 1):
        if step % 10 == 0:
            stream.append({"op": "set", "id": "counter", "params": {"n": n}})
            n += 1
        env["step"] = step
        kernel.apply(env, events)
        if counter.errors:  # fail at the first wrong command, not at the timeout
            pytest.fail(f"step {step}: {counter.errors[0]}")
        if step % (STEPS // 4) == 0:
            # measured once the commands written so far are applied (they arrive at the
            # polls, 50 ms apart): each quarter then holds the same number of entries, and
            # a growing entry (or a leak into the ledger) shows as growth
            wait_for(partial(drain, n), timeout=30, what=f"{n} commands applied")
            sizes.append(kernel.run_dir.ledger.stat().st_size)

    # the last commands arrive at the next poll (50 ms)
    wait_for(lambda: drain(COMMANDS), timeout=30, what=f"{COMMANDS} commands (got {counter.count})")
    assert counter.errors == []
    elapsed = time.perf_counter() - t0
    rss_after = rss_mib()
    kernel.close()
    entries = read_ledger(tmp_path / "soak" / "hotcb.applied.jsonl").entries
    external = [e for e in entries if e.source == "external"]
    print(
        f"\nsoak: {STEPS} steps, {COMMANDS} commands in {elapsed:.1f} s -> {STEPS / elapsed:,.0f} steps/s, "
        f"{COMMANDS / elapsed:,.0f} commands/s (incl. writing them); RSS {rss_before:.1f} -> {rss_after:.1f} MiB; "
        f"ledger {sizes[-1] / 2**20:.1f} MiB"
    )
    assert counter.count == COMMANDS and counter.last == COMMANDS - 1
    assert [e.line for e in external] == list(range(1, COMMANDS + 1))
    assert {e.decision for e in external} == {"applied"}
    assert rss_after - rss_before < RSS_GROWTH_MIB, "memory grew"
    growth = [b - a for a, b in itertools.pairwise(sizes)]
    assert max(growth) < 1.2 * min(growth), f"ledger growth not linear: {growth}"
