"""A real `hotcb` beside a real training process (no torch): a typo in `cb set` is
answered with the right name and nothing is queued, status shows what each callback
costs, and `status --watch` refreshes until Ctrl-C and exits 0."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import HOTCB, Child, external_entries, hotcb, needs_hotcb, run_state

pytestmark = [pytest.mark.subprocess, needs_hotcb]


@pytest.mark.slow(4)
def test_typo_cost_and_watch_against_a_real_run(
    tmp_path: Path, trainer: Callable[..., Child], spawn: Callable[..., Child]
) -> None:
    run_dir = tmp_path / "run"
    proc = trainer(run_dir, heartbeat=1000)
    assert proc.first_line() == "fresh"
    run = ("--dir", str(run_dir))

    typo = hotcb(*run, "cb", "set", "heartbeat", "evry=5", ok=False)
    assert typo.stderr == (
        "hotcb: error: heartbeat has no hot parameter 'evry'; did you mean 'every'? (it has: "
        "every, events, message); nothing was queued (see: hotcb cb describe heartbeat)\n"
    )
    bad = hotcb(*run, "cb", "set", "heartbeat", "every=-3", ok=False)
    assert "every must be an integer >= 1, got -3; nothing was queued" in bad.stderr
    assert not (run_dir / "hotcb.commands.jsonl").exists()  # nothing was queued
    hotcb(*run, "cb", "set", "heartbeat", "every=5.0")  # converted before it is queued
    (entry,) = proc.wait_for(lambda: external_entries(run_dir), what="the set applied")
    assert entry.decision == "applied" and entry.payload["params"] == {"every": 5}

    def sampled() -> bool:
        cost = (run_state(run_dir).get("costs") or {}).get("cb", {}).get("heartbeat")
        return bool(cost) and cost["samples"] >= 3

    proc.wait_for(sampled, what="sampled costs in the state")
    cost = json.loads(hotcb(*run, "status", "--json").stdout)["costs"]["heartbeat"]
    assert 0 < cost["mean_us"] <= cost["max_us"]
    text = hotcb(*run, "status", env={"COLUMNS": "120"}).stdout
    assert "seen" in text.splitlines()[0] and "s ago" in text.splitlines()[0]
    row = next(x for x in text.splitlines() if x.startswith("heartbeat"))
    assert "every=5" in row and 'events=["train_step_end"]' in row

    assert HOTCB is not None
    watch = spawn([HOTCB, *run, "status", "--watch", "--interval", "0.2"], ctrl_c=True)
    watch.wait_for(lambda: sum(x.startswith("--- ") for x in watch.lines) >= 3, what="refreshes")
    frames = [x for x in watch.lines if x.startswith("run ")]
    assert len(frames) >= 3 and all("live, pid" in x for x in frames)
    watch.interrupt()
    watch.finish(timeout=30, returncode=0)  # Ctrl-C ends the watch cleanly
