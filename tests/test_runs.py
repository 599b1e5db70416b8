"""Which run a command acts on without --dir: a live run first; of the ended runs, those
started from the current directory, then the last active (a run that died dated by its
last write); `hotcb runs` numbers them for --run N, and --run PID picks by pid."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from tests.helpers import Child

#: A run that writes its state, says so, and waits to be killed.
DIES = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0)
kernel.apply({"step": 3}, ["train_step_end"])
kernel.write_state()
print("up", flush=True)
time.sleep(600)
"""


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def chosen(*args: str) -> str:
    """The run dir ``hotcb [args] status`` shows."""
    return str(json.loads(invoke(*args, "status", "--json").stdout)["run_dir"])


def ended_run(run_dir: Path) -> None:
    kernel = HotKernel(run_dir=run_dir, poll_interval=0)
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.close()


@pytest.mark.subprocess
def test_ended_runs_started_here_first_then_the_last_active(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spawn: Any
) -> None:
    proj, other = tmp_path / "proj", tmp_path / "other"
    proj.mkdir()
    other.mkdir()
    # a run in proj that is killed: it wrote last before the next run closed
    died: Child = spawn([sys.executable, "-c", DIES, str(proj / "died")], cwd=proj)
    assert died.first_line() == "up"
    died.kill()
    monkeypatch.chdir(proj)
    ended_run(proj / "closed")  # closes after the other's last write
    monkeypatch.chdir(other)
    ended_run(other / "elsewhere")  # the most recent of all, but not started in proj

    monkeypatch.chdir(proj)  # the first command to notice the death: dated by its write
    assert chosen() == str(proj / "closed")
    monkeypatch.chdir(other)
    assert chosen() == str(other / "elsewhere")
    monkeypatch.chdir(tmp_path)  # none started here: the last active
    assert chosen() == str(other / "elsewhere")

    listed = json.loads(invoke("runs", "--json").stdout)
    assert listed["live"] == []
    numbers = {Path(r["run_dir"]).name: r["number"] for r in listed["recent"]}
    assert numbers == {"elsewhere": 1, "closed": 2, "died": 3}
    died_row = next(r for r in listed["recent"] if r["number"] == 3)
    assert died_row["run"]["dead"] is True
    text = invoke("runs").stdout
    assert "   3  " in text and "dead: process " in text

    assert chosen("--run", "3") == str(proj / "died")
    result = CliRunner().invoke(cli, ["status", "--run", "2", "--json"])
    assert json.loads(result.stdout)["run_dir"] == str(proj / "closed")  # after the command
    by_pid = json.loads(invoke("--run", str(died.pid), "status", "--json").stdout)
    assert by_pid["run_dir"] == str(proj / "died")
    missing = CliRunner().invoke(cli, ["--run", "99999999", "status"])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("hotcb: error: no run 99999999: `hotcb runs` lists 3 run(s)")


def test_of_several_live_runs_the_one_started_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj, other = tmp_path / "proj", tmp_path / "other"
    proj.mkdir()
    other.mkdir()
    monkeypatch.chdir(proj)
    mine = HotKernel(run_dir=proj / "run", poll_interval=0)
    monkeypatch.chdir(other)
    theirs = HotKernel(run_dir=other / "run", poll_interval=0)
    try:
        monkeypatch.chdir(proj)
        assert chosen() == str(proj / "run")
        result = invoke("cb", "disable", "x", "--force")  # a write: the live run started here
        assert f"-> {proj / 'run'} " in result.stdout
        monkeypatch.chdir(tmp_path)  # neither started here: the user must choose
        refused = CliRunner().invoke(cli, ["cb", "disable", "x", "--force"])
        assert refused.exit_code == 1 and "2 runs are live: 1: " in refused.stderr
        assert "Pick one with --run N" in refused.stderr
        assert chosen("--run", "2") == str(other / "run")
    finally:
        mine.close()
        theirs.close()
