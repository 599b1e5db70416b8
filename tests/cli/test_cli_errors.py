"""Errors end to end: where a problem is travels as fields (ledger -> `hotcb log`), and the
CLI's exit-code contract (0 on success, 1 with ONE `hotcb: error:` line on a user error)
holds for our own errors and click's, through click's standalone handling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.cli.app import UserError
from hotcb.errors import HotcbError
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.modules.cb import HotController
from hotcb.ops import CallbackTarget, Op

HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")


@pytest.fixture
def run(tmp_path: Path) -> Any:
    """A live run (this process) with heartbeat loaded."""
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 10}))
    kernel.apply({"step": 1}, ["train_step_end"])  # writes the state file
    yield kernel
    kernel.close()


def hotcb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTCB, *args], capture_output=True, text=True, timeout=60)


def invoke(*args: str) -> Any:
    """`hotcb ARGS` in this process (click's CliRunner), under the program name `hotcb`."""
    return CliRunner().invoke(cli, list(args), prog_name="hotcb")


def one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hotcb: error: "), stderr
    return lines[0]


@pytest.mark.subprocess
def test_a_bad_command_line_reaches_hotcb_log_with_its_file_and_line(run: HotKernel) -> None:
    run_dir = str(run.run_dir.path)
    # the run is this test's kernel: it applies them at its next apply, after the CLI ends
    assert hotcb("--dir", run_dir, "cb", "set", "heartbeat", "every=3", "--no-wait").returncode == 0
    with open(run.run_dir.commands, "a") as fh:
        fh.write('{"op": "set", "id": "heartbeat", "params": {"every": \n')
    assert hotcb("--dir", run_dir, "cb", "set", "heartbeat", "every=5", "--no-wait").returncode == 0
    run.apply({"step": 2}, ["train_step_end"])

    invalid = [e for e in read_ledger(run.run_dir.ledger).entries if e.op == "invalid"]
    assert len(invalid) == 1 and invalid[0].line == 2
    assert invalid[0].location == {"path": str(run.run_dir.commands), "line": 2}
    assert (invalid[0].error or "").startswith("not valid JSON: Expecting value at column ")
    assert run.modules["cb"].status()["heartbeat"]["params"] == {"every": 5}  # the next line

    shown = hotcb("--dir", run_dir, "log")
    assert shown.returncode == 0, shown.stderr
    (line,) = [x for x in shown.stdout.splitlines() if " invalid " in x]
    assert "error: hotcb.commands.jsonl line 2: not valid JSON: Expecting value at column" in line
    as_json = [json.loads(x) for x in hotcb("--dir", run_dir, "log", "--json").stdout.splitlines()]
    assert [e["location"] for e in as_json if e["op"] == "invalid"] == [invalid[0].location]


def test_a_bad_desired_state_file_is_logged_with_its_path_and_key(tmp_path: Path) -> None:
    config = tmp_path / "hotcb.yaml"
    config.write_text(f"callbacks:\n  hb:\n    target: {json.dumps(HEARTBEAT.to_dict())}\n")
    ctl = HotController(config_path=config, poll_interval=0)
    try:
        ctl.apply({"step": 1}, ["train_step_end"])
        config.write_text(
            f"callbacks:\n  hb:\n    target: {json.dumps(HEARTBEAT.to_dict())}\n    evry: 5\n"
        )
        os.utime(config, ns=(time.time_ns() + 5_000_000,) * 2)
        ctl.apply({"step": 2}, ["train_step_end"])
    finally:
        ctl.close()
    last = read_ledger(tmp_path / "hotcb.applied.jsonl").entries[-1]
    assert (last.op, last.decision) == ("invalid", "failed")
    assert last.location == {"path": str(config), "key": "callbacks.hb"}
    assert last.error == "unknown key(s) evry"
    shown = invoke("--dir", str(tmp_path), "log", "-n", "1")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.rstrip().endswith("error: hotcb.yaml, callbacks.hb: unknown key(s) evry")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([], "Usage: hotcb [OPTIONS] COMMAND"),
        (["cb"], "Usage: hotcb cb [OPTIONS] COMMAND"),
        (["--version"], "hotcb, version"),
        (["--dir", "{run}", "status"], "heartbeat"),
    ],
    ids=["no-command", "cb-no-command", "version", "status"],
)
def test_success_exits_0_with_nothing_on_stderr(
    run: HotKernel, args: list[str], shown: str
) -> None:
    result = invoke(*[a.format(run=run.run_dir.path) for a in args])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert shown in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cb", "set"], "Missing argument 'ID'. (see: hotcb cb set --help)"),
        (["log", "-n", "x"], "'x' is not a valid integer"),
        (
            ["cb", "load", "x", "--path", "a", "--symbol", "B", "--timeout", "soon"],
            "(see: hotcb cb load --help)",
        ),
        (["cb", "frob"], "No such command 'frob'. (see: hotcb cb --help)"),
        (["--bogus", "status"], "No such option '--bogus'. (see: hotcb --help)"),
        (["export-config", "--format", "xml"], "'xml' is not one of 'group', 'overrides'"),
        (["cb", "set", "ghost", "every=1"], "unknown callback id 'ghost'; known ids: heartbeat"),
        (["cb", "set", "heartbeat", "every"], "set: expected name=value, got 'every'"),
    ],
    ids=[
        "missing-arg",
        "bad-int",
        "bad-float",
        "no-command",
        "no-option",
        "bad-choice",
        "unknown-id",
        "bad-value",
    ],
)
def test_a_user_error_exits_1_with_one_line(run: HotKernel, args: list[str], expected: str) -> None:
    result = invoke("--dir", str(run.run_dir.path), *args)
    assert result.exit_code == 1, result.output
    assert expected in one_error_line(result.stderr)
    assert result.stdout == ""


def test_a_user_error_shows_its_location_in_front(run: HotKernel, tmp_path: Path) -> None:
    bad = tmp_path / "viz.py"
    bad.write_text("class Viz:\n    def handle(self)\n")
    load = ["cb", "load", "v", "--file", str(bad), "--symbol", "Viz"]
    result = invoke("--dir", str(run.run_dir.path), *load)
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"hotcb: error: {bad} line 2: syntax error (column ")
    gone = invoke("--dir", str(tmp_path / "nope"), "cb", "disable", "x")
    assert (
        one_error_line(gone.stderr) == f"hotcb: error: {tmp_path / 'nope'}: run dir does not exist"
    )


def test_the_user_error_is_a_click_exception_and_a_hotcb_error() -> None:
    error = UserError("cannot read it", path="/w/viz.py")
    assert isinstance(error, click.ClickException) and isinstance(error, HotcbError)
    assert error.exit_code == 1 and error.location == {"path": "/w/viz.py"}
    assert str(error) == "/w/viz.py: cannot read it"


def _blocked_on_a_lock(pid: int) -> bool:
    """True once process ``pid`` waits for a file lock (``/proc/locks`` marks it ``->``)."""
    with open("/proc/locks") as fh:
        return any("->" in line and f" {pid} " in line for line in fh)


@pytest.mark.subprocess
@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")
def test_ctrl_c_while_waiting_for_the_commands_lock_says_aborted(run: HotKernel) -> None:
    import fcntl

    with open(run.run_dir.commands, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer holding the lock: the CLI waits for it
        proc = subprocess.Popen(
            [HOTCB, "--dir", str(run.run_dir.path), "cb", "disable", "heartbeat"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not _blocked_on_a_lock(proc.pid):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert (proc.returncode, out, err) == (1, "", "\nhotcb: aborted\n")  # after the ^C
    assert run.run_dir.commands.read_text() == ""  # nothing was queued
