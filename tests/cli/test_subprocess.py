"""Real `hotcb` processes beside a real training process."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT, HOTCB, Child, external_entries, hotcb, needs_hotcb

pytestmark = [pytest.mark.subprocess, needs_hotcb]

Trainer = Callable[..., Child]


def test_cli_changes_a_live_run_without_dir(tmp_path: Path, trainer: Trainer) -> None:
    run_dir = tmp_path / "run"
    proc = trainer(run_dir, heartbeat=1000, echo=True)
    assert proc.first_line() == "fresh"
    result = hotcb("cb", "set", "heartbeat", "every=5")  # no --dir: finds the single live run
    assert str(run_dir) in result.stdout
    (entry,) = proc.wait_for(lambda: external_entries(run_dir), what="the set in the ledger")
    assert (entry.op, entry.decision) == ("set", "applied")
    # the CLI waited for the run's answer: the step the ledger says it was applied at
    assert result.stdout == f"applied at step {entry.step}: set heartbeat every=5 -> {run_dir}\n"

    # the cadence really changed from the applied step on
    def beats() -> list[int]:
        steps = [int(x.rsplit("=", 1)[1]) for x in list(proc.lines) if x.startswith("[heartbeat]")]
        return [s for s in steps if s >= entry.step]

    proc.wait_for(lambda: len(beats()) >= 3, what="three heartbeats after the set")
    assert all(b % 5 == 0 for b in beats()) and beats() == sorted(beats())
    assert beats()[1] - beats()[0] == 5
    status = json.loads(hotcb("status", "--json").stdout)
    assert status["live"] is True and status["callbacks"]["heartbeat"]["params"] == {"every": 5}
    log = [json.loads(x) for x in hotcb("log", "--json").stdout.splitlines()]
    assert [e["op"] for e in log] == ["load", "set"]


def test_several_live_runs_need_a_choice_and_stale_ones_are_ignored(
    tmp_path: Path, trainer: Trainer
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first = trainer(first_dir, heartbeat=1000)
    second = trainer(second_dir, heartbeat=1000)
    assert first.first_line() == second.first_line() == "fresh"  # both registered
    result = hotcb("cb", "disable", "heartbeat", ok=False)
    assert "2 runs are live" in result.stderr and str(first_dir) in result.stderr
    assert str(second_dir) in result.stderr and "--dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # HOTCB_RUN_DIR picks one
    picked = hotcb("cb", "disable", "heartbeat", env={"HOTCB_RUN_DIR": str(second_dir)})
    assert str(second_dir) in picked.stdout
    # a SIGKILLed run leaves a stale entry that is ignored
    first.kill()
    result = hotcb("status", "--json")
    assert json.loads(result.stdout)["run_dir"] == str(second_dir)


def test_read_only_commands_fall_back_to_the_most_recent_run(tmp_path: Path) -> None:
    kernel = HotKernel(run_dir=tmp_path / "done", poll_interval=0)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT))
    kernel.close()
    status = hotcb("status", "--json")
    assert json.loads(status.stdout) == {
        "run_dir": str(tmp_path / "done"),
        "live": False,
        "step": None,
        "callbacks": {"heartbeat": kernel_status(tmp_path / "done")},
        "stuck": [],
        "costs": {"heartbeat": None},  # never dispatched: no sample
        "updated": json.loads((tmp_path / "done" / "hotcb.state.json").read_text())["updated"],
    }
    refused = hotcb("cb", "disable", "heartbeat", ok=False)  # writing needs a live run or --dir
    assert "no live hotcb run" in refused.stderr


def kernel_status(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "hotcb.state.json").read_text())["callbacks"]["heartbeat"]


def _append_many(run_dir: str, writer: int, count: int) -> None:
    assert HOTCB is not None
    for i in range(count):
        subprocess.run(
            [
                HOTCB,
                "--dir",
                run_dir,
                "cb",
                "set",
                "heartbeat",
                f"w={writer}",
                f"i={i}",
                "--no-wait",
                "--force",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


@pytest.mark.slow(9)
def test_concurrent_cli_processes_never_lose_or_interleave(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    kernel = HotKernel(run_dir=tmp_path / "busy", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT))
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_append_many, str(kernel.run_dir.path), w, 10) for w in range(8)]
        step = 0
        while not all(f.done() for f in futures):  # a training loop, ~1 ms a step
            step += 1
            kernel.apply({"step": step}, ["train_step_end"])
            time.sleep(0.001)
        for f in futures:
            f.result()
    kernel.apply({"step": step + 1}, ["train_step_end"])
    lines = kernel.run_dir.commands.read_text().splitlines()
    assert len(lines) == 80
    pairs = {(c["params"]["w"], c["params"]["i"]) for c in map(json.loads, lines)}
    assert pairs == {(w, i) for w in range(8) for i in range(10)}
    external = external_entries(kernel.run_dir.path)
    assert sorted(e.line for e in external) == list(range(1, 81))  # each applied exactly once
    kernel.close()
