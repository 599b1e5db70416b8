"""`hotcb opt ...` and `hotcb loss ...` against a run dir a real kernel (with a real torch
optimizer) writes: values are refused up front from the run's state with nothing queued,
good ones are queued and take effect at the run's next safe point, `show` reads the state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.loss import LossModule
from hotcb.modules.opt import OptModule
from tests.cli.test_help_cost import CODE


class Run:
    """A kernel with the opt and loss modules, an SGD with two groups and a loss state."""

    def __init__(self, path: Path, **modules: Any) -> None:
        a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1, momentum=0.9)
        self.loss_state = {"weights": {"distill": 0.5}, "terms": {"aux": True}}
        self.kernel = HotKernel(path, poll_interval=0, register=False, modules=modules)
        self.step = 0
        self.apply()

    def apply(self) -> None:
        self.step += 1
        env = {"step": self.step, "optimizer": self.optimizer, "loss_state": self.loss_state}
        self.kernel.apply(env, ["train_step_end"])
        self.kernel.write_state()


@pytest.fixture
def run(tmp_path: Path) -> Any:
    r = Run(tmp_path / "run", cb=CallbackModule(), opt=OptModule("optimizer"), loss=LossModule())
    yield r
    r.kernel.close()


def invoke(run: Run, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--dir", str(run.kernel.run_dir.path), *args])


def queued(run: Run) -> str:
    path = run.kernel.run_dir.commands
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["opt", "set", "lr=-0.1"], "lr must be a finite number >= 0, got -0.1"),
        (["opt", "set", "group=2", "lr=0.1"], "group=2 does not exist: the optimizer has 2"),
        (["opt", "set", "betas=[0.9,0.99]"], "param group 0 has no 'betas'"),
        (["opt", "set", "lr=0.1", "lr_scale=2"], "give lr or lr_scale, not both"),
        (["opt", "set", "wd=0.1"], "opt has no parameter 'wd'"),
        (["opt", "set"], "nothing to set"),
        (["loss", "set", "terms.aux=0.5"], "terms.aux is true/false, got 0.5"),
        (["loss", "set", "distil_w=0.1"], "loss state has no 'weights.distil'"),
        (["loss", "set", "ramps.distill={end: 1}"], "needs warmup_frac"),
        (["loss", "set", "a..b=1"], "expected name=value or a.b=value"),
    ],
)
def test_a_bad_value_is_refused_before_queueing(run: Run, args: list[str], message: str) -> None:
    result = invoke(run, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("hotcb: error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert queued(run) == ""


def test_good_values_are_queued_and_applied_by_the_run(run: Run) -> None:
    result = invoke(run, "opt", "set", "group=1", "lr=0.01", "momentum=0.5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queued"] == {
        "module": "opt",
        "op": "set",
        "id": "optimizer",
        "params": {"group": 1, "lr": 0.01, "momentum": 0.5},
    }
    assert invoke(run, "loss", "set", "distill_w=0.2", "terms.aux=false").exit_code == 0
    run.apply()
    assert [(g["lr"], g["momentum"]) for g in run.optimizer.param_groups] == [
        (0.1, 0.9),
        (0.01, 0.5),
    ]
    assert run.loss_state == {"weights": {"distill": 0.2}, "terms": {"aux": False}}
    shown = invoke(run, "opt", "show")
    assert shown.exit_code == 0
    assert "optimizer SGD, scheduler none, config key optimizer" in shown.stdout
    assert "group 1: clip_norm=null lr=0.01 momentum=0.5" in shown.stdout
    section = json.loads(invoke(run, "loss", "show", "--json").stdout)
    assert section["values"] == run.loss_state and section["initial"]["weights"]["distill"] == 0.5


def test_forced_past_the_cli_the_run_fails_it_and_changes_nothing(run: Run) -> None:
    assert invoke(run, "opt", "set", "--force", "group=5", "lr=0.1").exit_code == 0
    run.apply()
    assert [g["lr"] for g in run.optimizer.param_groups] == [0.1, 0.1]
    assert "group=5 does not exist" in invoke(run, "log").stdout


def test_a_run_without_the_module_is_refused_naming_how_to_turn_it_on(tmp_path: Path) -> None:
    r = Run(tmp_path / "run", cb=CallbackModule())
    try:
        result = invoke(r, "opt", "set", "lr=0.1")
        assert result.exit_code == 1
        assert "this run has no opt module (its modules: cb): add hotcb.opt" in result.stderr
        assert "has no loss module" in invoke(r, "loss", "show").stderr
    finally:
        r.kernel.close()


@pytest.mark.parametrize(("group", "value"), [("opt", "lr=0.1"), ("loss", "terms.aux=false")])
def test_help_and_no_torch(group: str, value: str) -> None:
    result = CliRunner().invoke(cli, [group, "set", "--help"])
    assert result.exit_code == 0 and "K=V" in result.stdout
    out = subprocess.run(
        [sys.executable, "-c", CODE, "--dir", "/nonexistent", group, "set", value],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "torch" not in out and "hydra" not in out
