"""Another user's run: reading it is fine, writing commands or config into it is refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.state import HOSTNAME
from tests.security.harness import FinishedRun, give_away, hotcb, needs_root, one_error_line

pytestmark = [pytest.mark.subprocess, needs_root]

WRITES = [
    ("cb", "set", "heartbeat", "every=5"),
    ("cb", "disable", "heartbeat"),
    ("cb", "unload", "heartbeat", "--force"),
    (
        "cb",
        "load",
        "timing",
        "--path",
        "hotcb.modules.cb.callbacks.timing",
        "--symbol",
        "TimingCallback",
    ),
]


def test_cb_commands_to_another_users_run_are_refused(finished_run: FinishedRun) -> None:
    run = finished_run.run
    give_away(run)
    for args in WRITES:
        error = one_error_line(hotcb("--dir", str(run), *args))
        assert f"run dir {run} belongs to user nobody (uid 65534), not to you" in error, args
    assert not (run / "hotcb.commands.jsonl").exists()
    # reading stays allowed
    status = hotcb("--dir", str(run), "status")
    assert status.returncode == 0 and "heartbeat" in status.stdout, status.stderr
    log = hotcb("--dir", str(run), "log")
    assert log.returncode == 0 and "load" in log.stdout, log.stderr


def test_commands_file_the_run_would_refuse_is_not_written_to(finished_run: FinishedRun) -> None:
    run = finished_run.run
    commands = run / "hotcb.commands.jsonl"
    commands.write_text("")
    give_away(commands)  # the run dir is ours, its commands file is not
    error = one_error_line(hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=5"))
    assert f"refusing {commands}: it is owned by uid 65534" in error
    assert "the run would not read commands from it" in error
    assert commands.read_text() == ""


def test_export_config_of_another_users_run_is_refused(finished_run: FinishedRun) -> None:
    run = finished_run.run
    give_away(run)
    error = one_error_line(hotcb("--dir", str(run), "export-config"))
    assert f"run dir {run} belongs to user nobody (uid 65534), not to you" in error
    assert "train.py" not in error
    assert not (finished_run.conf / "hotcb").exists()
    # reading it is fine: the override deltas, or a file of my choosing
    deltas = hotcb("--dir", str(run), "export-config", "--format", "overrides")
    assert deltas.returncode == 0, deltas.stderr
    mine = finished_run.app / "mine.yaml"
    out = hotcb("--dir", str(run), "export-config", "--out", str(mine))
    assert out.returncode == 0 and "next run" not in out.stdout, out.stderr
    assert "every: 7" in mine.read_text()


def test_export_config_refuses_a_hydra_record_others_could_have_written(
    finished_run: FinishedRun,
) -> None:
    hydra_yaml = finished_run.run / ".hydra" / "hydra.yaml"
    os.chmod(hydra_yaml, 0o666)  # Hydra under umask 000
    error = one_error_line(hotcb("--dir", str(finished_run.run), "export-config"))
    assert f"refusing {hydra_yaml}: it is writable by other users (mode 0666)" in error
    assert f"chmod o-w {hydra_yaml}" in error
    assert not (finished_run.conf / "hotcb").exists()


def test_sweep_skips_jobs_of_another_user(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("{}\n")
    for job in ("0", "1"):
        (sweep / job).mkdir()
        state = {
            "pid": os.getpid(),
            "host": HOSTNAME,
            "closed": False,
            "step": 1,
            "callbacks": {"heartbeat": {"enabled": True}},
        }
        (sweep / job / "hotcb.state.json").write_text(json.dumps(state))
    give_away(sweep / "1")
    result = CliRunner().invoke(
        cli, ["--sweep", str(sweep), "cb", "set", "heartbeat", "every=5", "--json"]
    )
    assert result.exit_code == 0, result.output
    jobs = {row["job"]: row for row in json.loads(result.stdout)["jobs"]}
    assert jobs["0"]["queued"] is True
    assert jobs["1"]["queued"] is False and "nobody (uid 65534)" in jobs["1"]["reason"]
    assert not (sweep / "1" / "hotcb.commands.jsonl").exists()


def test_registry_entry_planted_by_another_user_is_ignored(finished_run: FinishedRun) -> None:
    from hotcb.runs import hotcb_home, live_runs, register_live_run

    entry = register_live_run(finished_run.run)  # looks like a live run of this process
    assert [r.run_dir for r in live_runs()] == [str(finished_run.run)]
    give_away(entry)
    assert live_runs() == []
    result = CliRunner().invoke(cli, ["cb", "set", "heartbeat", "every=5"])
    assert result.exit_code == 1 and "no live hotcb run found" in result.stderr
    assert not (finished_run.run / "hotcb.commands.jsonl").exists()
    assert oct(os.stat(hotcb_home() / "runs").st_mode & 0o777) == "0o700"
