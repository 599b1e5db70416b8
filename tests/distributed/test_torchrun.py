"""DDP under a real `torchrun --nproc_per_node=2` (gloo, CPU) beside real `hotcb` processes.

The example app trains a DistributedDataParallel model; a `hotcb cb set` sent mid-run must
be applied by both ranks at the same step, a callback that raises on rank 1 only must be
disabled on every rank and recorded with its rank, a stop asked on one rank must stop both,
and a restart in the same run dir must give every rank the same state back.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from tests.ddp_log import applied, applied_once_on_both, beats
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, run_state, stop_gate

pytestmark = [pytest.mark.subprocess, needs_hotcb]

RANK_ONE_FAILS = """
class Boom:
    def __init__(self, id="boom"):
        self.id = id
    def handle(self, event, env):
        if event == "train_step_end" and env["rank"] == 1:
            raise RuntimeError("only rank 1 breaks")
    def set_params(self, **kw):
        pass
"""

RANK_ONE_STOPS = """
from hotcb.requests import request_stop
class Stopper:
    def __init__(self, id="stopper", at=0):
        self.id, self.at = id, at
    def handle(self, event, env):
        if event == "train_step_end" and env["rank"] == 1 and self.at and env["step"] >= self.at:
            request_stop(env, "rank 1 has seen enough", by=self.id)
    def set_params(self, **kw):
        self.at = kw.get("at", self.at)
"""


def torchrun(spawn: Callable[..., Child], run_dir: Path, *overrides: str) -> Child:
    """The example app on 2 ranks (`--standalone`: its own free rendezvous port)."""
    return spawn(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(REPO / "examples" / "train.py"),
            f"hydra.run.dir={run_dir}",
            "hotcb/callbacks=[heartbeat,lr_monitor]",
            "hotcb.callbacks.lr_monitor.every=200",
            "+hotcb.sync_every=5",
            *overrides,
        ],
        cwd=run_dir.parent,
        env={"OMP_NUM_THREADS": "1"},
    )


def at_step(proc: Child, run_dir: Path, step: int) -> None:
    """Wait until the run reports ``step`` in its state file."""
    proc.wait_for(
        lambda: (run_state(run_dir).get("step") or 0) >= step,
        timeout=120,
        what=f"step {step}",
    )


def stopped_at(out: str) -> int:
    """The step both ranks stopped at (a stop is agreed at one step)."""
    stops = {int(r): int(s) for r, s in re.findall(r"\[rank (\d)\] stopping at step (\d+)", out)}
    assert set(stops) == {0, 1} and stops[0] == stops[1], out[-3000:]
    return stops[0]


@pytest.mark.slow(17)
def test_live_ops_apply_on_both_ranks_at_the_same_step(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    run_dir = tmp_path / "ddp"
    boom = tmp_path / "boom.py"
    boom.write_text(RANK_ONE_FAILS)
    gate = stop_gate(tmp_path)  # the run lasts until the test has seen what it needs
    proc = torchrun(
        spawn,
        run_dir,
        "steps=100000",
        "step_sleep=0.002",
        "hotcb.callbacks.heartbeat.every=100",
        *gate.overrides,
    )
    at_step(proc, run_dir, 210)  # heartbeats at 100 and 200, lr_monitor at 200
    # each waits for the run's answer: on a loaded machine two ranks take a while
    hotcb("--dir", str(run_dir), "cb", "set", "heartbeat", "every=30", "--timeout", "60")
    hotcb("--dir", str(run_dir), "cb", "load", "boom", "--file", str(boom), "--symbol", "Boom",
          "--wait", "60")  # fmt: skip
    proc.wait_for(lambda: len(external_entries(run_dir)) == 2, what="both commands applied")
    at_step(proc, run_dir, external_entries(run_dir)[0].step + 100)  # beats at the new cadence
    gate.release()
    out = proc.finish()
    end = stopped_at(out)

    # both ranks applied the set at the same step, a sync point (a multiple of 5)
    at = applied_once_on_both(out, "set heartbeat")
    assert at >= 210 and at % 5 == 0
    # ... and both ranks' heartbeat changed cadence there
    for rank in (0, 1):
        before = [s for s in beats(out, rank) if s < at]
        after = [s for s in beats(out, rank) if s > at]
        assert before == list(range(100, at, 100))
        assert after == list(range(at + 30 - at % 30, end + 1, 30))
    assert beats(out, 0) == beats(out, 1)
    # lr_monitor logs: rank-zero-only, so rank 1 never runs it
    assert re.findall(r"\[rank 0\] \[lr_monitor\] step=(\d+)", out) == [
        str(s) for s in range(200, end + 1, 200)
    ]
    assert "[rank 1] [lr_monitor]" not in out

    # the file callback loaded on both ranks from rank 0's bytes; it raised on rank 1 only
    assert applied(out, 0, "load boom") == applied(out, 1, "load boom")
    entries = read_ledger(run_dir / "hotcb.applied.jsonl").entries
    external = [e for e in entries if e.source == "external"]
    assert [(e.op, e.id, e.decision) for e in external] == [
        ("set", "heartbeat", "applied"),
        ("load", "boom", "applied"),
    ]
    assert all(e.payload["world_size"] == 2 for e in external)
    failures = [e for e in entries if e.id == "boom" and e.op == "disable"]
    assert len(failures) == 1
    assert failures[0].source == "auto" and failures[0].payload["rank"] == 1
    assert "rank 1: RuntimeError: only rank 1 breaks" in (failures[0].error or "")
    state = run_state(run_dir)
    assert state["world_size"] == 2 and state["closed"] and state["step"] == end
    assert state["callbacks"]["boom"]["enabled"] is False  # disabled on every rank
    assert state["callbacks"]["boom"]["error"].startswith("rank 1: RuntimeError: only rank 1")
    assert "world size 2" in hotcb("--dir", str(run_dir), "status").stdout.splitlines()[0]
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}

    # a restart in the same dir: both ranks rebuild the same set (boom from captured bytes)
    boom.unlink()  # only the captured source remains
    gate.file.unlink()  # the gate is rebuilt too: closed this time
    out = torchrun(spawn, run_dir, "steps=60", "hotcb.callbacks.heartbeat.every=100").finish()
    assert beats(out, 0) == beats(out, 1) == [30, 60]  # every=30 survived the restart
    assert "load boom failed" not in out  # rank 1 had no file: it got rank 0's bytes
    state = run_state(run_dir)
    assert state["callbacks"]["boom"]["enabled"] is False and state["step"] == 60
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}


@pytest.mark.slow(7)
def test_a_stop_asked_on_one_rank_stops_both_at_the_same_step(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    run_dir = tmp_path / "ddp"
    stopper = tmp_path / "stopper.py"
    stopper.write_text(RANK_ONE_STOPS)
    proc = torchrun(spawn, run_dir, "steps=100000", "step_sleep=0.002")
    at_step(proc, run_dir, 50)
    hotcb(
        "--dir",
        str(run_dir),
        "cb",
        "load",
        "stopper",
        "--file",
        str(stopper),
        "--symbol",
        "Stopper",
        "--init",
        "at=1",
        "--wait",
        "60",
    )
    out = proc.finish()  # would hang (and fail) if only rank 1 left the loop
    end = stopped_at(out)
    assert "rank 1 has seen enough" in out
    state: dict[str, Any] = run_state(run_dir)
    assert state["closed"] and state["step"] == end
