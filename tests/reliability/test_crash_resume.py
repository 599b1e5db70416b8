"""SIGKILL a real training process, restart it in the same run dir: same state, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream

pytestmark = pytest.mark.subprocess

TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0)
print("resumed" if kernel.resumed else "fresh", flush=True)
step = int(sys.argv[2])
while True:
    step += 1
    kernel.apply({"step": step, "log": lambda m: None}, ["train_step_end"])
    time.sleep(0.001)
"""
CALLBACK = """
class Viz:
    def __init__(self, id="viz", every=1, tag="v1"):
        self.id, self.every, self.tag = id, every, tag
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
"""
HEARTBEAT = {
    "kind": "module",
    "path": "hotcb.modules.cb.callbacks.heartbeat",
    "symbol": "HeartbeatCallback",
}


def start(run: Path, step: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run), str(step)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.first_line = proc.stdout.readline().strip()  # type: ignore[attr-defined]
    return proc


def external_lines(run: Path) -> list[int]:
    return [
        e.line
        for e in read_ledger(run / "hotcb.applied.jsonl").entries
        if e.source == "external" and e.line is not None
    ]


def wait_lines(run: Path, n: int) -> None:
    deadline = time.monotonic() + 30
    while len(external_lines(run)) < n:
        assert time.monotonic() < deadline, external_lines(run)
        time.sleep(0.02)


def state(run: Path) -> dict[str, Any]:
    return json.loads((run / "hotcb.state.json").read_text())["callbacks"]


def test_sigkill_then_restart_rebuilds_state_and_applies_each_command_once(tmp_path: Path) -> None:
    run = tmp_path / "run"
    src = tmp_path / "viz.py"
    src.write_text(CALLBACK)
    stream = CommandStream(run / "hotcb.commands.jsonl")
    first = start(run, 0)
    assert first.first_line == "fresh"  # type: ignore[attr-defined]
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT, "init": {"every": 7}})
    stream.append(
        {
            "op": "load",
            "id": "viz",
            "target": {"kind": "python_file", "path": str(src), "symbol": "Viz"},
        }
    )
    stream.append({"op": "set", "id": "viz", "params": {"every": 3}})
    stream.append({"op": "disable", "id": "hb"})
    wait_lines(run, 4)
    time.sleep(0.1)  # let a state write happen
    before = state(run)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # while it is down: the file changes on disk, and more commands arrive
    src.write_text(CALLBACK.replace('tag="v1"', 'tag="v2"'))
    stream.append({"op": "set", "id": "viz", "params": {"every": 9}})
    stream.append({"op": "enable", "id": "hb"})
    second = start(run, 1000)
    try:
        assert second.first_line == "resumed"  # type: ignore[attr-defined]
        wait_lines(run, 6)
        time.sleep(0.1)
        after = state(run)
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(10)
    assert external_lines(run) == [1, 2, 3, 4, 5, 6]  # nothing twice, nothing lost
    assert before["viz"]["sha256"] == after["viz"]["sha256"]  # the captured bytes, not the edit
    assert after["viz"]["params"] == {"every": 9} and after["hb"]["enabled"] is True
    expected = {
        **before,
        "viz": {**before["viz"], "params": {"every": 9}},
        "hb": {**before["hb"], "enabled": True},
    }
    assert after == expected
    replay = [e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "resume"]
    assert len(replay) == 1 and replay[0].payload["entries"] == 4


def test_sigkill_during_heavy_writes_leaves_only_valid_lines(tmp_path: Path) -> None:
    run = tmp_path / "run"
    stream = CommandStream(run / "hotcb.commands.jsonl")
    proc = start(run, 0)
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT})
    for i in range(3000):
        stream.append({"op": "set", "id": "hb", "params": {"every": 1 + i % 50}})
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    read = read_ledger(run / "hotcb.applied.jsonl")
    assert read.bad_lines == []  # every complete line is a valid entry
    assert [e.seq for e in read.entries] == list(range(1, len(read.entries) + 1))
    again = start(run, 0)  # and the run resumes on top of whatever was left
    try:
        assert again.first_line == "resumed"  # type: ignore[attr-defined]
        wait_lines(run, 3001)
    finally:
        again.kill()
        again.wait(10)
    assert external_lines(run) == list(range(1, 3002))
