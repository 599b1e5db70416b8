"""A ledger another user owns (or can write) is never replayed: nothing from it runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ledger import LedgerEntry, dumps_line, read_ledger
from hotcb.stream import CommandStream
from tests.security.harness import HEARTBEAT, give_away, needs_root

#: A callback whose constructor leaves a mark: if it is constructed, code from the ledger ran.
PLANTED = """
import pathlib
class Planted:
    def __init__(self, id="planted", marker=""):
        pathlib.Path(marker).write_text("ran")
        self.id = id
    def handle(self, event, env):
        pass
    def set_params(self, **kw):
        pass
"""


def plant_entry(ledger: Path, tmp_path: Path, seq: int) -> Path:
    """Append an applied load of ``Planted`` to ``ledger``; return the marker it would write."""
    source = tmp_path / "planted.py"
    source.write_text(PLANTED)
    marker = tmp_path / "PLANTED_RAN"
    entry = LedgerEntry(
        seq=seq,
        wall_time=time.time(),
        step=1,
        epoch=None,
        event=None,
        module="cb",
        op="load",
        id="planted",
        source="external",
        decision="applied",
        payload={
            "target": {"kind": "python_file", "path": str(source), "symbol": "Planted"},
            "init": {"marker": str(marker)},
        },
    )
    with open(ledger, "ab") as fh:
        fh.write(dumps_line(entry.to_dict()))
    return marker


def owned_by_another_user(path: Path) -> None:
    give_away(path)


def writable_by_others(path: Path) -> None:
    os.chmod(path, 0o666)


@pytest.mark.parametrize(
    ("untrust", "why"),
    [
        pytest.param(owned_by_another_user, "owned by uid 65534", marks=needs_root),
        (writable_by_others, "writable by other users (mode 0666)"),
    ],
)
def test_untrusted_ledger_is_set_aside_not_replayed(
    tmp_path: Path, caplog: Any, untrust: Callable[[Path], None], why: str
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    ledger = run / "hotcb.applied.jsonl"
    marker = plant_entry(ledger, tmp_path, seq=1)
    os.chmod(ledger, 0o600)
    untrust(ledger)
    planted = ledger.read_bytes()
    # the run's own commands file (trusted): read from its first line
    CommandStream(run / "hotcb.commands.jsonl").append(
        {"op": "load", "id": "hb", "target": HEARTBEAT.to_dict()}
    )

    with caplog.at_level(logging.ERROR, logger="hotcb"):
        kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
        kernel.apply({"step": 1}, ["train_step_end"])
    try:
        assert not marker.exists(), "code from an untrusted ledger ran"
        assert kernel.resumed is False
        assert list(kernel.modules["cb"].status()) == ["hb"]
        aside = list(run.glob("hotcb.applied.untrusted-*.jsonl"))
        assert len(aside) == 1 and aside[0].read_bytes() == planted  # kept for a person
        first = read_ledger(ledger).entries[0]
        assert (first.seq, first.module, first.op, first.decision) == (
            1,
            "kernel",
            "refuse",
            "failed",
        )
        assert why in (first.error or "") and "is not replayed" in (first.error or "")
        assert aside[0].name in (first.error or "")
        assert why in caplog.text and "is not replayed" in caplog.text
        state = json.loads((run / "hotcb.state.json").read_text())
        assert state["warnings"] == [first.error]
    finally:
        kernel.close()


TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0)
print("resumed" if kernel.resumed else "fresh", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step, "log": lambda m: None}, ["train_step_end"])
    time.sleep(0.002)
"""


def start(run: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def callbacks(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / "hotcb.state.json").read_text())["callbacks"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.subprocess
@needs_root
def test_real_training_process_resumes_without_replaying_a_ledger_taken_over(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    proc, first = start(run)
    try:
        assert first == "fresh"
        CommandStream(run / "hotcb.commands.jsonl").append(
            {"op": "load", "id": "hb", "target": HEARTBEAT.to_dict(), "init": {"every": 9}}
        )
        wait_for(lambda: "hb" in callbacks(run))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # while the run is down, another user takes the ledger over and adds a load
    ledger = run / "hotcb.applied.jsonl"
    marker = plant_entry(ledger, tmp_path, seq=read_ledger(ledger).entries[-1].seq + 1)
    give_away(ledger)

    proc, first = start(run)
    try:
        assert first == "fresh"  # not resumed from the ledger
        wait_for(lambda: (run / "hotcb.state.json").exists() and callbacks(run).get("hb"))
        state = json.loads((run / "hotcb.state.json").read_text())
        assert not marker.exists(), "code from an untrusted ledger ran"
        assert list(state["callbacks"]) == ["hb"]  # rebuilt from the commands file, line 1
        assert state["callbacks"]["hb"]["params"]["every"] == 9
        assert "owned by uid 65534" in state["warnings"][0]
        assert len(list(run.glob("hotcb.applied.untrusted-*.jsonl"))) == 1
        assert os.stat(ledger).st_uid == os.geteuid()  # a fresh ledger of the run's own
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
