"""Soak: 1,000,000 steps with 100,000 commands spread through them (HOTCB_SOAK_STEPS to scale).

Every command is applied exactly once and in order, memory stays flat, the ledger grows
linearly. Prints steps/s, commands/s and RSS before/after (run with -s to see them).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op
from hotcb.stream import CommandStream

pytestmark = pytest.mark.slow

STEPS = int(os.environ.get("HOTCB_SOAK_STEPS", "1000000"))
COMMANDS = STEPS // 10


class Counter:
    def __init__(self, id: str = "counter") -> None:
        self.id = id
        self.last = -1
        self.count = 0

    def handle(self, event: str, env: dict[str, Any]) -> None:
        pass

    def set_params(self, **kw: Any) -> None:
        assert kw["n"] == self.last + 1, (kw, self.last)
        self.last = kw["n"]
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
    for step in range(1, STEPS + 1):
        if step % 10 == 0:
            stream.append({"op": "set", "id": "counter", "params": {"n": n}})
            n += 1
        env["step"] = step
        kernel.apply(env, events)
        if step % (STEPS // 4) == 0:
            sizes.append(kernel.run_dir.ledger.stat().st_size)
    while kernel.modules["cb"].controller.get("counter").count < COMMANDS:  # type: ignore[union-attr]
        time.sleep(0.01)
        kernel.apply(env, events)
    elapsed = time.perf_counter() - t0
    rss_after = rss_mib()
    counter = kernel.modules["cb"].controller.get("counter")
    kernel.close()
    entries = read_ledger(tmp_path / "soak" / "hotcb.applied.jsonl").entries
    external = [e for e in entries if e.source == "external"]
    print(
        f"\nsoak: {STEPS} steps, {COMMANDS} commands in {elapsed:.1f} s -> {STEPS / elapsed:,.0f} steps/s, "
        f"{COMMANDS / elapsed:,.0f} commands/s (incl. writing them); RSS {rss_before:.1f} -> {rss_after:.1f} MiB; "
        f"ledger {sizes[-1] / 2**20:.1f} MiB"
    )
    assert counter.count == COMMANDS and counter.last == COMMANDS - 1  # type: ignore[union-attr]
    assert [e.line for e in external] == list(range(1, COMMANDS + 1))
    assert rss_after - rss_before < 20, "memory grew"
    growth = [b - a for a, b in itertools.pairwise(sizes)]
    assert max(growth) < 1.2 * min(growth), f"ledger growth not linear: {growth}"
