"""The next command `hotcb export-config` prints is composed by Hydra first: the spelling the
app's defaults list needs, or no command (and why) when Hydra would start something else."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT

TIMING = "hotcb.modules.cb.callbacks.timing.TimingCallback"


def changed_run(app: Path, config: str, overrides: list[str]) -> Path:
    """A run dir of the app at ``app`` (config.yaml ``config``) with one live change."""
    conf = app / "conf"
    conf.mkdir(parents=True)
    (conf / "config.yaml").write_text(config)
    run = app / "outputs" / "d" / "t"
    kernel = HotKernel(run_dir=run, register=False)
    kernel.submit(
        Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 9}), source="external"
    )
    kernel.close()
    hydra: dict[str, Any] = {
        "runtime": {
            "config_sources": [{"provider": "main", "path": str(conf), "schema": "file"}],
            "version_base": "1.3",
        },
        "job": {"config_name": "config"},
        "overrides": {"task": overrides},
    }
    (run / ".hydra").mkdir()
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    launch = {"argv": ["train.py", *overrides], "overrides": overrides, "cwd": str(app)}
    (run / "hotcb.launch.json").write_text(json.dumps(launch))
    return run


def export(app: Path, run: Path) -> Any:
    with contextlib.chdir(app):
        result = CliRunner().invoke(cli, ["--dir", str(run), "export-config", "--name", "next"])
    assert result.exit_code == 0, result.output
    return result


def test_an_app_whose_defaults_list_has_the_group_gets_no_plus(tmp_path: Path) -> None:
    config = "defaults:\n  - hotcb/callbacks: [timing]\n  - _self_\nlr: 0.1\n"
    run = changed_run(tmp_path, config, ["lr=0.5", "hotcb/callbacks=[]"])
    result = export(tmp_path, run)
    assert result.stdout.splitlines()[1] == "next run: python train.py lr=0.5 hotcb/callbacks=next"


def test_no_command_when_the_app_overrides_the_export_itself(tmp_path: Path) -> None:
    config = (
        "defaults:\n  - hotcb/callbacks: [timing]\n  - _self_\n"
        "hotcb:\n  callbacks:\n    heartbeat:\n      every: 3\n"
    )
    run = changed_run(tmp_path, config, [])
    result = export(tmp_path, run)
    option = tmp_path / "conf" / "hotcb" / "callbacks" / "next.yaml"
    assert result.stdout == f"wrote {option}\n"  # written, but no command that would be wrong
    assert result.stderr.startswith(
        "hotcb: warning: no next command: Hydra does not compose the export as the next run's "
        "callbacks (hotcb/callbacks=next: composes to other callbacks than the export"
    )
    assert "Next run" not in option.read_text()
    assert yaml.safe_load(option.read_text())["heartbeat"]["every"] == 9
