"""DDP under a real `torchrun --nproc_per_node=2` (gloo, CPU) beside real `hotcb` processes.

The example app trains a DistributedDataParallel model; a `hotcb cb set` sent mid-run must
be applied by both ranks at the same step, a callback that raises on rank 1 only must be
disabled on every rank and recorded with its rank, a stop asked on one rank must stop both,
and a restart in the same run dir must give every rank the same state back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from tests.ddp_log import applied, applied_once_on_both, beats

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]
HOTCB = shutil.which("hotcb")

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


def torchrun(run_dir: Path, *overrides: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
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
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def hotcb(run_dir: Path, *args: str) -> None:
    assert HOTCB
    subprocess.run([HOTCB, "--dir", str(run_dir), *args], check=True, timeout=60)


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    state = run_dir / "hotcb.state.json"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "training ended before the live change"
        try:
            if (json.loads(state.read_text()).get("step") or 0) >= step:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"run never reached step {step}")


def finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # a hang is a failure, not a stuck CI job
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("torchrun hung:\n" + out[-4000:]) from None
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.skipif(HOTCB is None, reason="the hotcb console script is not installed")
def test_live_ops_apply_on_both_ranks_at_the_same_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    boom = tmp_path / "boom.py"
    boom.write_text(RANK_ONE_FAILS)
    proc = torchrun(
        run_dir, "steps=1200", "step_sleep=0.005", "hotcb.callbacks.heartbeat.every=100"
    )
    wait_for_step(run_dir, 150, proc)
    hotcb(run_dir, "cb", "set", "heartbeat", "every=30")
    hotcb(run_dir, "cb", "load", "boom", "--file", str(boom), "--symbol", "Boom")
    out = finish(proc)

    # both ranks applied the set at the same step, a sync point (a multiple of 5)
    at = applied_once_on_both(out, "set heartbeat")
    assert at >= 150 and at % 5 == 0
    # ... and both ranks' heartbeat changed cadence there
    for rank in (0, 1):
        before = [s for s in beats(out, rank) if s < at]
        after = [s for s in beats(out, rank) if s > at]
        assert before and all(s % 100 == 0 for s in before)
        assert after == list(range(at + 30 - at % 30 if at % 30 else at + 30, 1201, 30))
    assert beats(out, 0) == beats(out, 1)
    # lr_monitor logs: rank-zero-only, so rank 1 never runs it
    assert re.findall(r"\[rank 0\] \[lr_monitor\] step=(\d+)", out) == [
        "200",
        "400",
        "600",
        "800",
        "1000",
        "1200",
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
    state = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["world_size"] == 2 and state["closed"] and state["step"] == 1200
    assert state["callbacks"]["boom"]["enabled"] is False  # disabled on every rank
    assert state["callbacks"]["boom"]["error"].startswith("rank 1: RuntimeError: only rank 1")
    assert (
        "world size 2"
        in subprocess.run(
            [HOTCB, "--dir", str(run_dir), "status"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[0]
    )
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}

    # a restart in the same dir: both ranks rebuild the same set (boom from captured bytes)
    boom.unlink()  # only the captured source remains
    proc = torchrun(run_dir, "steps=60", "hotcb.callbacks.heartbeat.every=100")
    out = finish(proc)
    assert beats(out, 0) == beats(out, 1) == [30, 60]  # every=30 survived the restart
    assert "load boom failed" not in out  # rank 1 had no file: it got rank 0's bytes
    state = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["callbacks"]["boom"]["enabled"] is False and state["step"] == 60
    assert state["callbacks"]["heartbeat"]["params"] == {"every": 30}


@pytest.mark.skipif(HOTCB is None, reason="the hotcb console script is not installed")
def test_a_stop_asked_on_one_rank_stops_both_at_the_same_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    stopper = tmp_path / "stopper.py"
    stopper.write_text(RANK_ONE_STOPS)
    proc = torchrun(run_dir, "steps=100000", "step_sleep=0.002")
    wait_for_step(run_dir, 50, proc)
    hotcb(
        run_dir,
        "cb",
        "load",
        "stopper",
        "--file",
        str(stopper),
        "--symbol",
        "Stopper",
        "--init",
        "at=1",
    )
    out = finish(proc)  # would hang (or time out) if only rank 1 left the loop
    stops = {int(r): int(s) for r, s in re.findall(r"\[rank (\d)\] stopping at step (\d+)", out)}
    assert set(stops) == {0, 1} and stops[0] == stops[1], out[-3000:]
    assert "rank 1 has seen enough" in out
    state: dict[str, Any] = json.loads((run_dir / "hotcb.state.json").read_text())
    assert state["closed"] and state["step"] == stops[0]
