"""The lightning-hydra-template shape, end to end: an app whose callbacks/default.yaml has
the one line `- hotcb`, trained as its users would (`hotcb/callbacks=[timing,heartbeat]`),
changed live by real `hotcb` processes (a built-in's param, a Lightning callback loaded by
class, the app's own EarlyStopping adopted by id), exported, and the next run started
from the printed command, then stopped with Ctrl-C."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

# the app imports Lightning in its own processes; this one only needs it installed
if importlib.util.find_spec("lightning") is None:
    pytest.skip("needs lightning", allow_module_level=True)
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, run_state

# one module-scoped run: the tests stay on one xdist worker (else each worker runs it)
pytestmark = pytest.mark.xdist_group("template")

APP = Path(__file__).with_name("template_app")


def _run_dir(child: Child, cwd: Path) -> Path:
    """The Hydra output dir the run writes (the hotcb run dir is that dir)."""

    def found() -> Path | None:
        dirs = [p.parent for p in (cwd / "outputs").glob("*/*/hotcb.state.json")]
        return dirs[0] if len(dirs) == 1 else None

    return child.wait_for(found, 120, "the run's hotcb.state.json")


def _beats(child: Child) -> list[int]:
    return [int(x.rsplit("=", 1)[1]) for x in list(child.lines) if "[heartbeat]" in x]


def _lr_column(run: Path) -> bool:
    for metrics in run.glob("csv/version_*/metrics.csv"):
        with metrics.open() as fh:
            header = next(csv.reader(fh), [])
        if any(h.startswith("lr-SGD") for h in header):
            return True
    return False


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One training run changed live, its export, and the next run (Ctrl-C'd)."""
    work = tmp_path_factory.mktemp("template")
    shutil.copytree(APP, work / "app")
    env = {"PYTHONPATH": str(REPO)}
    first = Child(
        [
            sys.executable,
            "app/train.py",
            "callbacks=default",
            "hotcb/callbacks=[timing,heartbeat]",
            "+hotcb.adopt=[early_stopping]",
            "+hotcb.poll_interval=0",
            "sleep=0.01",
        ],
        cwd=work,
        env=env,
    )
    try:
        run = _run_dir(first, work)
        first.wait_for(lambda: (run_state(run).get("step") or 0) > 3, 60, "a few steps")
        hotcb("--dir", str(run), "cb", "set", "heartbeat", "every=5")
        first.wait_for(lambda: any(b % 100 for b in _beats(first)), 60, "a beat every 5")
        hotcb(
            "--dir",
            str(run),
            "cb",
            "load",
            "lrm",
            "--path",
            "lightning.pytorch.callbacks",
            "--symbol",
            "LearningRateMonitor",
            "--init",
            "logging_interval=step",
        )
        first.wait_for(lambda: _lr_column(run), 60, "LearningRateMonitor's lr column")
        refused = hotcb("--dir", str(run), "cb", "disable", "early_stopping", ok=None)
        first.wait_for(lambda: len(external_entries(run)) >= 3, 60, "the disable's answer")
        hotcb("--dir", str(run), "cb", "set", "early_stopping", "patience=3")
        output = first.finish(180)  # EarlyStopping, now patient 3 checks, ends the run
    finally:
        first.kill()
    exported = hotcb("--dir", str(run), "export-config", "--json", cwd=work)
    command = json.loads(exported.stdout)["next_command"]
    assert command is not None, exported.stdout
    argv = shlex.split(command)
    assert argv[0] == "python"
    second = Child([sys.executable, *argv[1:]], cwd=work, env=env, ctrl_c=True)
    try:
        second.wait_for(lambda: 5 in _beats(second), 120, "the next run's first beat at 5")
        second.interrupt()
        second_output = second.finish(120, returncode=None)
        code = second.proc.returncode
    finally:
        second.kill()
    runs = sorted(p.parent for p in (work / "outputs").glob("*/*/hotcb.state.json"))
    return {
        "run": run,
        "output": output,
        "refused": refused,
        "command": command,
        "next": next(r for r in runs if r != run),
        "next_output": second_output,
        "next_code": code,
    }


@needs_hotcb
@pytest.mark.subprocess
@pytest.mark.slow(20)
def test_the_one_line_wires_the_group_and_the_run_dir_is_hydras(template: dict[str, Any]) -> None:
    run = template["run"]
    assert (run / ".hydra" / "config.yaml").is_file()  # next to .hydra, not version_0/hotcb
    state = run_state(run)
    assert {"timing", "heartbeat", "lrm", "early_stopping"} <= set(state["callbacks"])
    # output through logging: in Hydra's job log too, with the same "applied" lines
    job_log = (run / "train.log").read_text()
    beats = [int(x.rsplit("=", 1)[1]) for x in job_log.splitlines() if "[heartbeat]" in x]
    assert any(b % 100 for b in beats)  # the live every=5, in the job log
    assert "hotcb: set heartbeat applied" in job_log


@needs_hotcb
@pytest.mark.subprocess
def test_live_changes_land_with_their_effect(template: dict[str, Any]) -> None:
    entries = {(e.op, e.id): e for e in external_entries(template["run"])}
    assert entries["set", "heartbeat"].decision == "applied"
    assert entries["load", "lrm"].decision == "applied"
    # an adopted callback takes `set` only: disable is refused with the reason, recorded
    assert entries["disable", "early_stopping"].decision == "failed"
    assert "adopted for live `set` only" in (entries["disable", "early_stopping"].error or "")
    assert entries["set", "early_stopping"].decision == "applied"
    # the set kept EarlyStopping's state: its wait count went on past the new patience, so
    # it stopped the run at its next check
    stopped = re.search(r"did not improve in the last (\d+) records", template["output"])
    assert stopped and int(stopped.group(1)) >= 3
    params = run_state(template["run"])["callbacks"]["early_stopping"]["params"]
    assert params["patience"] == 3


@needs_hotcb
@pytest.mark.subprocess
def test_export_and_the_next_run_start_from_the_changed_state(template: dict[str, Any]) -> None:
    command = template["command"]
    assert "callbacks.early_stopping.patience=3" in command
    name = (
        template["run"].parent.name.replace("-", "_") + "_" + template["run"].name.replace("-", "_")
    )
    assert f"hotcb/callbacks=live_{name}" in command  # unique per run
    state = run_state(template["next"])
    assert state["callbacks"]["heartbeat"]["params"]["every"] == 5
    assert state["callbacks"]["lrm"]["target"]["symbol"] == "LearningRateMonitor"
    # Ctrl-C: Lightning's graceful shutdown, and hotcb closed the run cleanly
    assert "Detected KeyboardInterrupt" in template["next_output"]
    assert state["closed"] and template["next_code"] != 0
    config = (template["next"] / ".hydra" / "config.yaml").read_text()
    assert "patience: 3" in config
