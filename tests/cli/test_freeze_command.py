"""`hotcb freeze`: queues the kernel's own op (taken even by a frozen run) or shows the mode."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel


def test_freeze_queues_the_kernel_op_and_shows_the_mode(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with HotKernel(run_dir=run, register=False, freeze="replay"):
        pass
    invoke = CliRunner().invoke
    shown = invoke(cli, ["--dir", str(run), "freeze"])
    assert (shown.exit_code, shown.output) == (0, f"run {run}: freeze replay\n")
    status = invoke(cli, ["--dir", str(run), "status"])
    assert status.output.splitlines()[0] == f"run {run} (not live, step None, frozen: replay)"
    assert json.loads(invoke(cli, ["--dir", str(run), "status", "--json"]).output)["freeze"] == (
        "replay"
    )
    queued = invoke(cli, ["--dir", str(run), "freeze", "--mode", "off", "--json"])
    assert queued.exit_code == 0, queued.output
    line = json.loads((run / "hotcb.commands.jsonl").read_text())
    expected = {"module": "kernel", "op": "freeze", "id": "kernel", "params": {"mode": "off"}}
    assert json.loads(queued.output)["queued"] == line == expected
    bad = invoke(cli, ["--dir", str(run), "freeze", "--mode", "thaw"])
    assert bad.exit_code == 1 and "'thaw' is not one of 'off', 'prod', 'replay'" in bad.stderr
