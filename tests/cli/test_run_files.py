"""The CLI reads a run's files one way: the launch record through the one reader (a symlink
planted at its name is not followed), and whether a run is live through the one liveness
check (a pid that is not a pid at all means not live, it does not crash the command)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.runs import hotcb_home


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), prog_name="hotcb")


def _job(sweep: Path, name: str, step: int) -> Path:
    run = sweep / name
    run.mkdir()
    state = {"pid": 1, "host": "elsewhere", "closed": True, "step": step, "callbacks": {}}
    (run / "hotcb.state.json").write_text(json.dumps(state))
    return run


def test_sweep_status_does_not_follow_a_symlinked_launch_record(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    first, second = _job(sweep, "0", 5), _job(sweep, "1", 6)
    (first / "hotcb.launch.json").write_text(json.dumps({"overrides": ["lr=0.1"]}))
    elsewhere = tmp_path / "someone_elses.json"
    elsewhere.write_text(json.dumps({"overrides": ["token=s3cret"]}))
    (second / "hotcb.launch.json").symlink_to(elsewhere)

    result = invoke("--sweep", str(sweep), "status", "--json")
    assert result.exit_code == 0, result.output
    jobs = {job["job"]: job for job in json.loads(result.stdout)["jobs"]}
    assert jobs["0"]["overrides"] == ["lr=0.1"]
    assert jobs["1"]["overrides"] == []  # the symlink was not read through
    table = invoke("--sweep", str(sweep), "status").stdout
    assert "lr=0.1" in table and "s3cret" not in table


def test_status_of_a_state_whose_pid_is_not_a_pid_says_not_live(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    state = {"pid": 10**30, "host": None, "closed": False, "step": 3, "callbacks": {}}
    (run / "hotcb.state.json").write_text(json.dumps(state))
    result = invoke("--dir", str(run), "status")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"run {run} (not live, step 3)"


def test_a_registry_entry_whose_pid_is_not_a_pid_is_stale(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    runs_dir = hotcb_home() / "runs"
    runs_dir.mkdir(parents=True, mode=0o700)
    entry = runs_dir / "1-bogus.json"
    entry.write_text(
        json.dumps({"run_dir": str(run), "pid": 10**30, "host": os.uname().nodename, "started": 1})
    )
    entry.chmod(0o600)
    result = invoke("runs")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "live: none"
    assert not entry.exists()  # recognised as stale and removed
