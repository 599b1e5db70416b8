"""Deterministic replay, end to end with real processes: a small Hydra app of this test's
own (no torch) is run A with live changes from the `hotcb` CLI (set, load from a .py,
disable, an --at-step set), exported with `hotcb export-config --schedule`, copied to
another path with outputs/ deleted and the .py edited, and run again from the printed
command: run B replays A exactly; run C starts from the exported callbacks option (its .py
from conf/hotcb/sources/); run D is a shorter strict replay that reports what it missed;
run E replays A with adjustments given as overrides. A's recipe (`hotcb recipe export`)
imports back into the schedule export-config wrote.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotcb.ledger import LedgerEntry, read_ledger
from tests.helpers import Child, hotcb, needs_hotcb

# one module-scoped set of runs: the tests stay on one xdist worker (else each worker runs it)
pytestmark = [
    pytest.mark.subprocess,
    pytest.mark.slow(1),
    needs_hotcb,
    pytest.mark.xdist_group("replay"),
]

TRAIN = """
import os, sys, time
from pathlib import Path

import hydra

from hotcb.kernel import HotKernel


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    kernel = HotKernel.from_config(cfg, poll_interval=0)
    run_dir = kernel.run_dir.path
    print(f"run dir: {run_dir}", flush=True)
    gates = os.environ.get("GATES")
    with open(run_dir / "out.txt", "w") as out:
        env = {"log": lambda m: out.write(m + "\\n")}
        for step in range(1, cfg.steps + 1):
            env["step"] = step
            if gates and os.path.exists(f"{gates}/wait{step}"):
                print(f"waiting at {step}", flush=True)
                while not os.path.exists(f"{gates}/go{step}"):
                    time.sleep(0.005)
            kernel.apply(env, ["train_step_end"])
    missed = kernel.close() or []
    print("missed: " + ",".join(e.payload["schedule_key"] for e in missed), flush=True)
    sys.exit(3 if missed else 0)


main()
"""

VIZ = """
VERSION = {version}

class Viz:
    def __init__(self, id="viz", every=4):
        self.id, self.every = id, every
    def handle(self, event, env):
        if env["step"] % self.every == 0:
            env["log"](f"[{{self.id}}] v{{VERSION}} step={{env['step']}}")
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
"""


def op_sequence(run_dir: Path) -> list[tuple[Any, ...]]:
    """(step, event, op, id, params) of every op a run applied, in ledger order."""
    return [
        (e.step, e.event, e.op, e.id, dict(e.payload.get("params") or {}))
        for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
        if e.decision == "applied" and e.module == "cb"
    ]


def ledger(run_dir: Path) -> list[LedgerEntry]:
    return read_ledger(run_dir / "hotcb.applied.jsonl").entries


@dataclass
class Replay:
    app: Path
    clone: Path
    run_a: Path
    export: list[str]
    command: list[str]
    refused: str
    runs: dict[str, tuple[Path, Child]]


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    root = tmp_path_factory.mktemp("replay")
    app = root / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "config.yaml").write_text("defaults:\n  - _self_\nsteps: 40\n")
    (app / "train.py").write_text(TRAIN)
    (app / "viz.py").write_text(VIZ.format(version=1))
    gates = root / "gates"
    gates.mkdir()
    for step in (10, 20, 30):
        (gates / f"wait{step}").touch()
    children: list[Child] = []

    def start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Path, Child]:
        child = Child([sys.executable, *args], cwd=cwd, env=env)
        children.append(child)
        return Path(child.wait_line("run dir: ").split(": ", 1)[1]), child

    try:
        run_a, a = start(
            app,
            "train.py",
            "+hotcb/callbacks=[heartbeat]",
            "hotcb.callbacks.heartbeat.every=2",
            env={"GATES": str(gates)},
        )
        at = ("--dir", str(run_a))
        # --no-wait: the run answers at its next apply, and it waits at a gate now
        a.wait_line("waiting at 10")
        hotcb(*at, "cb", "set", "heartbeat", "every=3", "--no-wait")
        hotcb(*at, "cb", "load", "viz", "--file", "viz.py", "--symbol", "Viz", "--no-wait", cwd=app)
        (gates / "go10").touch()
        a.wait_line("waiting at 20")
        hotcb(*at, "cb", "disable", "heartbeat", "--no-wait")
        hotcb(*at, "cb", "set", "viz", "every=5", "--at-step", "25", "--no-wait")
        refused = hotcb(*at, "cb", "enable", "heartbeat", "--at-step", "5", ok=False).stderr
        (gates / "go20").touch()
        a.wait_line("waiting at 30")
        hotcb(*at, "cb", "enable", "heartbeat", "--no-wait")
        (gates / "go30").touch()
        a.finish(timeout=120)

        export = hotcb(*at, "export-config", "--schedule", "--name", "replay_a", cwd=app).stdout
        lines = export.splitlines()
        command = shlex.split(lines[-1].removeprefix("next run: "))
        # the app goes elsewhere (a fresh clone): no outputs/, and the .py is edited
        (app / "viz.py").write_text(VIZ.format(version=2))
        clone = root / "elsewhere" / "clone"
        shutil.copytree(app, clone)
        shutil.rmtree(clone / "outputs")
        (clone / "viz.py").write_text(VIZ.format(version=3))
        assert command[0] == "python"
        script = [sys.executable, *command[1:]]
        runs = {
            "B": start(clone, *script[1:], "hydra.run.dir=outputs/B"),
            "C": start(
                clone,
                "train.py",
                "+hotcb/callbacks=replay_a",
                "steps=12",
                "hydra.run.dir=outputs/C",
            ),
            "D": start(
                clone,
                *script[1:],
                "hotcb.schedule.policy=strict",
                "steps=22",
                "hydra.run.dir=outputs/D",
            ),
            # E: A adjusted with Hydra overrides (hotcb.schedule.adjust rules)
            "E": start(
                clone,
                *script[1:],
                "+hotcb.schedule.adjust.slow_viz={match:{id:viz,op:set},replace_params:{every:7}}",
                "+hotcb.schedule.adjust.late={match:{op:disable},shift_step:2}",
                "steps=26",
                "hydra.run.dir=outputs/E",
            ),
        }
        yield Replay(app, clone, run_a, lines, command, refused, runs)
    finally:
        for child in children:
            child.kill()


def test_run_a_applies_at_step_exactly_and_refuses_a_passed_step(replay: Replay) -> None:
    sequence = op_sequence(replay.run_a)
    assert (25, "train_step_end", "set", "viz", {"every": 5}) in sequence
    assert [s[:3] for s in sequence if s[0] >= 10] == [
        (10, "train_step_end", "set"),
        (10, "train_step_end", "load"),
        (20, "train_step_end", "disable"),
        (25, "train_step_end", "set"),
        (30, "train_step_end", "enable"),
    ]
    assert "step 5 already passed: the run is at step 10" in replay.refused


def test_export_writes_the_schedule_and_its_source_into_the_config_dir(replay: Replay) -> None:
    conf = replay.app / "conf" / "hotcb"
    assert replay.export[0] == f"wrote {conf / 'callbacks' / 'replay_a.yaml'}"
    assert replay.export[1].startswith(f"wrote {conf / 'schedule' / 'replay_a.yaml'} (5 ")
    assert replay.command[1:] == [
        "train.py",
        "+hotcb/callbacks=[heartbeat]",
        "hotcb.callbacks.heartbeat.every=2",
        "+hotcb/schedule=replay_a",
    ]
    schedule = yaml.safe_load((conf / "schedule" / "replay_a.yaml").read_text())
    assert list(schedule) == [
        "policy",
        "step_offset",
        "s10_set_heartbeat",
        "s10_load_viz",
        "s20_disable_heartbeat",
        "s25_set_viz",
        "s30_enable_heartbeat",
    ]
    path = schedule["s10_load_viz"]["target"]["path"]
    assert path.startswith("config://hotcb/sources/") and path.endswith(".py")
    assert (conf.parent / path.removeprefix("config://")).is_file()
    option = yaml.safe_load((conf / "callbacks" / "replay_a.yaml").read_text())
    assert option["viz"]["_target_"] == f"{path}:Viz"


def test_replay_b_repeats_run_a_exactly_from_the_captured_bytes(replay: Replay) -> None:
    run_b, b = replay.runs["B"]
    assert b.finish(timeout=120).endswith("missed: ")
    assert run_b.parent == replay.clone / "outputs"
    assert op_sequence(run_b) == op_sequence(replay.run_a)
    replayed = [e for e in ledger(run_b) if e.step and e.step >= 10]
    assert {e.source for e in replayed} == {"schedule"}
    out_a = (replay.run_a / "out.txt").read_text().splitlines()
    assert (run_b / "out.txt").read_text().splitlines() == out_a
    assert "[viz] v1 step=12" in out_a and "[viz] v1 step=35" in out_a
    effective = yaml.safe_load((run_b / "hotcb.schedule.yaml").read_text())
    assert effective == yaml.safe_load(
        (replay.app / "conf" / "hotcb" / "schedule" / "replay_a.yaml").read_text()
    )


def test_the_exported_option_runs_from_a_clone_at_another_path(replay: Replay) -> None:
    run_c, c = replay.runs["C"]
    c.finish(timeout=120)
    loads = {e.id: e for e in ledger(run_c) if e.op == "load"}
    a_load = next(e for e in ledger(replay.run_a) if e.op == "load" and e.id == "viz")
    assert loads["viz"].decision == "applied"
    assert loads["viz"].payload["sha256"] == a_load.payload["sha256"]
    assert loads["viz"].payload["target"]["path"].startswith(str(replay.clone / "conf"))
    assert "[viz] v1 step=10" in (run_c / "out.txt").read_text().splitlines()


def test_a_shorter_strict_replay_reports_exactly_what_it_missed(replay: Replay) -> None:
    run_d, d = replay.runs["D"]
    assert d.finish(timeout=120, returncode=3).endswith("missed: s25_set_viz,s30_enable_heartbeat")
    failed = [e for e in ledger(run_d) if e.decision == "failed"]
    assert [(e.op, e.id, e.source, e.payload["schedule_key"]) for e in failed] == [
        ("set", "viz", "schedule", "s25_set_viz"),
        ("enable", "heartbeat", "schedule", "s30_enable_heartbeat"),
    ]
    status = hotcb("--dir", str(run_d), "status").stdout
    assert "2 scheduled op(s) missed:" in status
    assert (
        "step 25 train_step_end: set viz every=5 [s25_set_viz]: the run ended at step 22" in status
    )


def test_an_adjusted_replay_applies_the_rules_given_as_overrides(replay: Replay) -> None:
    run_e, e = replay.runs["E"]
    assert e.finish(timeout=120).endswith("missed: ")

    def adjusted(op: tuple[Any, ...]) -> tuple[Any, ...]:
        step, event, name, cb_id, params = op
        if name == "disable":  # late: shift_step 2
            step += 2
        if (name, cb_id) == ("set", "viz"):  # slow_viz: replace_params every=7
            params = {**params, "every": 7}
        return (step, event, name, cb_id, params)

    a_ops = [adjusted(op) for op in op_sequence(replay.run_a)]
    expected = sorted((op for op in a_ops if op[0] <= 26), key=lambda op: op[0])
    assert (25, "train_step_end", "set", "viz", {"every": 7}) in expected
    assert op_sequence(run_e) == expected
    effective = yaml.safe_load((run_e / "hotcb.schedule.yaml").read_text())
    assert "adjust" not in effective  # applied: a copy of it replays the same ops
    assert effective["s20_disable_heartbeat"]["step"] == 22
    assert effective["s25_set_viz"]["params"] == {"every": 7}


def test_a_recipe_of_run_a_imports_back_into_the_exported_schedule(
    replay: Replay, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from hotcb.cli import cli
    from hotcb.schedule import Schedule

    runner = CliRunner()
    out = runner.invoke(cli, ["--dir", str(replay.run_a), "recipe", "export", "--json"])
    assert out.exit_code == 0, out.output
    recipe = Path(json.loads(out.output)["path"])
    assert recipe == replay.run_a / "hotcb.recipe.jsonl"
    lines = [json.loads(line) for line in recipe.read_text().splitlines()]
    assert lines[0] == {
        "at": {"step": 10, "event": "train_step_end"},
        "module": "cb",
        "op": "set_params",
        "id": "heartbeat",
        "params": {"every": 3},
    }
    assert lines[1]["source_capture"]["captured_path"].startswith("hotcb.sources/")
    conf = tmp_path / "conf"
    conf.mkdir()
    args = ["recipe", "import", str(recipe), "--config-dir", str(conf), "--name", "from_a"]
    imported = runner.invoke(cli, args)
    assert imported.exit_code == 0, imported.output
    option = conf / "hotcb" / "schedule" / "from_a.yaml"
    assert imported.output.splitlines() == [
        f"wrote {option} (5 scheduled ops)",
        "replay it: add +hotcb/schedule=from_a to the training command",
    ]

    def read(path: Path) -> Schedule:
        return Schedule.from_config(yaml.safe_load(path.read_text()))

    exported = read(replay.app / "conf" / "hotcb" / "schedule" / "replay_a.yaml")
    assert read(option) == exported  # same keys, (step, event, op, id, params), same source
    source = exported.entries["s10_load_viz"].target["path"].removeprefix("config://")
    assert (conf / source).read_bytes() == (replay.app / "conf" / source).read_bytes()
