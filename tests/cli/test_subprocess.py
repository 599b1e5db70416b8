"""Real `hotcb` processes beside a real training process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import CallbackTarget, Op

pytestmark = pytest.mark.subprocess

HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")

TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0.01)
kernel.submit(Op(op="load", id="heartbeat", init={"every": 1000},
                 target=CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")))
print("ready", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step, "log": lambda m: print(m, flush=True)}, ["train_step_end"])
    time.sleep(0.002)
"""


def hotcb(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOTCB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[Any]:
    """Start a training subprocess; yield a function that starts another; kill all after."""
    procs: list[subprocess.Popen[str]] = []

    def start(name: str = "run") -> tuple[subprocess.Popen[str], Path]:
        run_dir = tmp_path / name
        proc = subprocess.Popen(
            [sys.executable, "-c", TRAINER, str(run_dir)],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc, run_dir

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_cli_changes_a_live_run_without_dir(trainer: Any) -> None:
    proc, run_dir = trainer()
    result = hotcb("cb", "set", "heartbeat", "every=5")  # no --dir: finds the single live run
    assert result.returncode == 0, result.stderr
    assert str(run_dir) in result.stdout
    entry = wait_for(
        lambda: [
            e
            for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
            if e.source == "external"
        ]
    )[0]
    assert (entry.op, entry.decision) == ("set", "applied")
    # the cadence really changed from the applied step on
    beats: list[int] = []
    while len(beats) < 3:
        line = proc.stdout.readline()
        if line.startswith("[heartbeat]") and int(line.rsplit("=", 1)[1]) >= entry.step:
            beats.append(int(line.rsplit("=", 1)[1]))
    assert all(b % 5 == 0 for b in beats) and beats == sorted(beats)
    assert beats[1] - beats[0] == 5
    status = json.loads(hotcb("status", "--json").stdout)
    assert status["live"] is True and status["callbacks"]["heartbeat"]["params"] == {"every": 5}
    log = [json.loads(x) for x in hotcb("log", "--json").stdout.splitlines()]
    assert [e["op"] for e in log] == ["load", "set"]


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_several_live_runs_need_a_choice_and_stale_ones_are_ignored(trainer: Any) -> None:
    first, first_dir = trainer("a")
    _, second_dir = trainer("b")
    result = hotcb("cb", "disable", "heartbeat")
    assert result.returncode == 1
    assert "2 runs are live" in result.stderr and str(first_dir) in result.stderr
    assert str(second_dir) in result.stderr and "--dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # HOTCB_RUN_DIR picks one
    picked = hotcb("cb", "disable", "heartbeat", env={"HOTCB_RUN_DIR": str(second_dir)})
    assert picked.returncode == 0 and str(second_dir) in picked.stdout
    # a SIGKILLed run leaves a stale entry that is ignored
    first.kill()
    first.wait(10)
    result = hotcb("status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run_dir"] == str(second_dir)


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_read_only_commands_fall_back_to_the_most_recent_run(tmp_path: Path) -> None:
    kernel = HotKernel(run_dir=tmp_path / "done", poll_interval=0)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT))
    kernel.close()
    status = hotcb("status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {
        "run_dir": str(tmp_path / "done"),
        "live": False,
        "step": None,
        "callbacks": {"heartbeat": kernel_status(tmp_path / "done")},
        "stuck": [],
    }
    refused = hotcb("cb", "disable", "heartbeat")  # writing needs a live run or --dir
    assert refused.returncode == 1 and "no live hotcb run" in refused.stderr


def kernel_status(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "hotcb.state.json").read_text())["callbacks"]["heartbeat"]


def _append_many(run_dir: str, writer: int, count: int) -> None:
    for i in range(count):
        subprocess.run(
            [HOTCB, "--dir", run_dir, "cb", "set", "heartbeat", f"w={writer}", f"i={i}"],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.mark.skipif(not HOTCB, reason="the hotcb console script is not installed")
def test_concurrent_cli_processes_never_lose_or_interleave(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    kernel = HotKernel(run_dir=tmp_path / "busy", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT))
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_append_many, str(kernel.run_dir.path), w, 10) for w in range(8)]
        step = 0
        while not all(f.done() for f in futures):
            step += 1
            kernel.apply({"step": step}, ["train_step_end"])
        for f in futures:
            f.result()
    kernel.apply({"step": step + 1}, ["train_step_end"])
    lines = kernel.run_dir.commands.read_text().splitlines()
    assert len(lines) == 80
    pairs = {(c["params"]["w"], c["params"]["i"]) for c in map(json.loads, lines)}
    assert pairs == {(w, i) for w in range(8) for i in range(10)}
    external = [e for e in read_ledger(kernel.run_dir.ledger).entries if e.source == "external"]
    assert sorted(e.line for e in external) == list(range(1, 81))  # each applied exactly once
    kernel.close()
