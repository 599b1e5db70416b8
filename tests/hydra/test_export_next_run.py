"""Issue 11's mends of the run -> config -> next run loop, with real processes: a tiny Hydra
app of the test's own (no torch, no hotcb entry in its defaults list, a fresh env dict per
step) and the real `hotcb` CLI.

Run A is started with ``+hotcb/callbacks=[timing,heartbeat]`` plus a callback ``arm`` whose
``set_params`` takes ``armed``, which its constructor does not. Two commands reach it from the
CLI (queued before it starts, so they apply at step 1): ``cb set arm armed=true every=5`` and
``cb disable timing``. Its export must name the real last step, keep ``armed`` out of the
constructor (``_set_``), print a next command that keeps the ``+``, and refuse names the
group already has. Run B starts from that printed command, frozen (``hotcb.freeze=prod``):
a live ``cb set`` is recorded as ignored, and its export says nothing changed.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.ledger import read_ledger
from tests.helpers import Child, external_entries, hotcb, needs_hotcb, run_state

# one module-scoped pair of runs: the tests stay on one xdist worker
pytestmark = [pytest.mark.subprocess, needs_hotcb, pytest.mark.xdist_group("export_next_run")]

TRAIN = """
import pathlib, time
import hydra
from hotcb.kernel import HotKernel

@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    kernel = HotKernel.from_config(cfg)
    say = lambda m: print(m, flush=True)
    step = 0
    while step < cfg.steps and not (cfg.stop_file and pathlib.Path(cfg.stop_file).exists()):
        step += 1
        kernel.apply({"step": step, "log": say}, ["train_step_end"])  # a fresh dict per step
        time.sleep(cfg.sleep)
    kernel.close()

main()
"""

ARM = """
class Arm:
    def __init__(self, id="arm", every=10):
        self.id, self.every, self.armed = id, every, False
    def handle(self, event, env):
        if env["step"] % self.every == 0:
            env["log"](f"[{self.id}] step={env['step']} armed={self.armed}")
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
        self.armed = kw.get("armed", self.armed)
"""


@dataclass(frozen=True)
class App:
    root: Path
    options: Path  # conf/hotcb/callbacks

    def cli(self, *args: str, ok: bool = True) -> Any:
        """`hotcb ARGS` in this process (CliRunner), from the app's dir."""
        with contextlib.chdir(self.root):
            result = CliRunner().invoke(cli, list(args), prog_name="hotcb")
        assert result.exit_code == (0 if ok else 1), result.output
        return result

    def run(self, *overrides: str) -> None:
        subprocess.run(
            [sys.executable, "train.py", *overrides],
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=120,
        )


@dataclass(frozen=True)
class Exported:
    run: Path
    lines: list[str]  # what `hotcb export-config --name arm_run` printed
    option: Path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    root = tmp_path_factory.mktemp("app")
    (root / "conf").mkdir()
    (root / "conf" / "config.yaml").write_text("steps: 30\nsleep: 0\nstop_file: null\n")
    (root / "train.py").write_text(TRAIN)
    (root / "arm.py").write_text(ARM)
    return App(root, root / "conf" / "hotcb" / "callbacks")


@pytest.fixture(scope="module")
def exported(app: App) -> Exported:
    run = app.root / "runs" / "a"
    run.mkdir(parents=True)
    for command in (["cb", "set", "arm", "armed=true", "every=5"], ["cb", "disable", "timing"]):
        app.cli("--dir", str(run), *command, "--force")  # queued for the run about to start
    app.run(
        "+hotcb/callbacks=[timing,heartbeat]",
        "+hotcb.callbacks.arm._target_=arm.py:Arm",
        f"hydra.run.dir={run}",
    )
    entries = external_entries(run)
    assert [(e.op, e.id, e.decision, e.step) for e in entries] == [
        ("set", "arm", "applied", 1),
        ("disable", "timing", "applied", 1),
    ]
    # the real CLI once: the export the README shows (the other calls run in this process)
    lines = hotcb("--dir", str(run), "export-config", "--name", "arm_run", cwd=app.root)
    return Exported(run, lines.stdout.splitlines(), app.options / "arm_run.yaml")


@pytest.mark.slow(3)  # the first test pays for run A
def test_status_and_export_say_the_last_step_of_a_fresh_dict_loop(
    app: App, exported: Exported
) -> None:
    shown = app.cli("--dir", str(exported.run), "status").stdout.splitlines()[0]
    assert shown == f"run {exported.run} (not live, step 30)"
    header = exported.option.read_text().splitlines()[2]
    assert header.startswith("# (step 30, ")


def test_a_hot_param_the_constructor_does_not_take_exports_under_set(
    app: App, exported: Exported
) -> None:
    node = yaml.safe_load(exported.option.read_text())["arm"]
    assert node["every"] == 5  # a constructor kwarg
    assert node["_set_"] == {"armed": True}  # set_params only
    assert node["_target_"].endswith(".py:Arm")
    overrides = app.cli("--dir", str(exported.run), "export-config", "--format", "overrides")
    assert shlex.split(overrides.stdout) == [
        "+hotcb.callbacks.arm.every=5",
        "+hotcb.callbacks.arm._set_.armed=true",
        "+hotcb.callbacks.timing._enabled_=false",
    ]


def test_the_printed_next_command_keeps_the_plus(exported: Exported) -> None:
    assert exported.lines == [
        f"wrote {exported.option}",
        "next run: python train.py +hotcb/callbacks=arm_run",
    ]
    assert "# Next run: python train.py +hotcb/callbacks=arm_run" in exported.option.read_text()


def test_name_rules(app: App, exported: Exported) -> None:
    export = ["--dir", str(exported.run), "export-config"]
    for extra in ([], ["--force"]):  # a built-in's name: refused even with --force
        refused = app.cli(*export, "--name", "timing", *extra, ok=False)
        assert refused.stderr == (
            "hotcb: error: option name 'timing' is taken: hotcb/callbacks/timing is already an "
            "option on the app's search path (pkg://hotcb.conf); an export by that name would "
            "shadow it for every later run. Choose another --name\n"
        )
    assert not (app.options / "timing.yaml").exists()
    again = app.cli(*export, "--name", "arm_run", ok=False)
    assert again.stderr == (
        f"hotcb: error: {exported.option}: already exists; pass --force to overwrite it\n"
    )
    assert app.cli(*export, "--name", "arm_run", "--force").stdout.startswith("wrote ")


@pytest.mark.slow(3)
def test_the_next_run_from_the_printed_command_frozen(
    app: App, exported: Exported, spawn: Callable[..., Child]
) -> None:
    command = shlex.split(exported.lines[1].removeprefix("next run: "))
    run = app.root / "runs" / "b"
    stop = app.root / "stop-b"
    frozen_long_run = ["+hotcb.freeze=prod", f"stop_file={stop}", "sleep=0.002", "steps=1000000"]
    b = spawn(
        [sys.executable, *command[1:], *frozen_long_run, f"hydra.run.dir={run}"], cwd=app.root
    )
    b.wait_line("[arm] step=5 armed=True")  # _set_ reached set_params right after __init__
    assert run_state(run)["freeze"] == "prod"
    loads = {e.id: e for e in read_ledger(run / "hotcb.applied.jsonl").entries if e.op == "load"}
    arm = loads["arm"]
    assert (arm.source, arm.step, arm.decision) == ("config", 0, "applied")
    assert (arm.payload["init"], arm.payload["params"]) == ({"every": 5}, {"armed": True})

    refused = hotcb("--dir", str(run), "cb", "set", "arm", "every=7", ok=False)  # the real CLI
    assert refused.stderr.startswith(f"hotcb: error: run {run} is frozen (freeze: prod): ")
    (ignored,) = b.wait_for(lambda: external_entries(run), what="the set in B's ledger")
    assert (ignored.op, ignored.id, ignored.decision) == ("set", "arm", "ignored")
    assert ignored.error is not None and ignored.error.startswith("the run is frozen")
    assert run_state(run)["callbacks"]["arm"]["params"]["every"] == 5

    hotcb("--dir", str(run), "freeze", "--mode", "off")
    b.wait_for(lambda: run_state(run).get("freeze") == "off", what="run B thawed")
    stop.touch()
    b.finish(timeout=120)

    # nothing changed since B's config: nothing written, said on each form
    before = sorted(app.options.iterdir())
    said = app.cli("--dir", str(run), "export-config")
    assert said.stdout == f"nothing changed since the run's config ({run}); nothing was written\n"
    assert sorted(app.options.iterdir()) == before
    overrides = app.cli("--dir", str(run), "export-config", "--format", "overrides")
    assert (overrides.stdout, overrides.stderr) == ("", said.stdout)
    as_json = json.loads(app.cli("--dir", str(run), "export-config", "--json").stdout)
    assert (as_json["changed"], as_json["path"], as_json["message"]) == (
        False,
        None,
        "nothing changed since the run's config",
    )
