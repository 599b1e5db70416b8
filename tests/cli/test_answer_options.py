"""The surface of the answer options and `hotcb undo`, through click's CliRunner against
real run-dir files (an in-process kernel: the CLI does not wait on the process it runs in)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT


@pytest.fixture
def run(tmp_path: Path) -> Any:
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 10}))
    kernel.apply({"step": 1}, ["train_step_end"])
    yield kernel
    kernel.close()


def invoke(kernel: HotKernel, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--dir", str(kernel.run_dir.path), *args])


def commands(kernel: HotKernel) -> list[dict[str, Any]]:
    path = kernel.run_dir.commands
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["cb", "set", "heartbeat", "every=5", "--timeout", "0"], "must be a positive number"),
        (["cb", "set", "heartbeat", "every=5", "--timeout", "nan"], "must be a positive number"),
        (["cb", "disable", "heartbeat", "--no-wait", "--wait", "3"], "or --no-wait, not both"),
        (["undo", "0"], "0 is not in the range x>=1"),
        (["undo"], "nothing to undo: "),
    ],
)
def test_bad_answer_options_are_one_error_line(run: HotKernel, args: list[str], error: str) -> None:
    result = invoke(run, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("hotcb: error: ") and error in result.stderr
    assert result.stderr.count("\n") == 1
    assert commands(run) == []


def test_the_run_in_this_process_is_not_waited_for(run: HotKernel) -> None:
    result = invoke(run, "cb", "set", "heartbeat", "every=5", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)["answer"]
    assert answer["outcome"] == "queued" and "the run is this process" in answer["note"]
    assert commands(run) == [
        {"module": "cb", "op": "set", "id": "heartbeat", "params": {"every": 5}}
    ]


def test_load_keeps_timeout_as_the_watchdog_budget_and_waits_with_wait(run: HotKernel) -> None:
    load = ["cb", "load", "t", "--path", "hotcb.modules.cb.callbacks.timing"]
    result = invoke(run, *load, "--symbol", "TimingCallback", "--timeout", "2", "--wait", "1")
    assert result.exit_code == 0, result.output
    assert commands(run)[0]["init"] == {"_timeout_": 2.0}
    assert "--wait SECONDS" in invoke(run, "cb", "load", "--help").stdout


def test_undo_queues_the_exact_inverses_newest_first(run: HotKernel) -> None:
    for args in (["set", "heartbeat", "every=5"], ["disable", "heartbeat"]):
        assert invoke(run, "cb", *args).exit_code == 0
    run.apply({"step": 2}, ["train_step_end"])
    result = invoke(run, "undo", "2", "--dry-run")  # checked, shown, nothing queued
    assert result.exit_code == 0, result.output
    assert "dry run (nothing queued): enable heartbeat" in result.stdout
    assert "override delta: hotcb.callbacks.heartbeat.every=10" in result.stdout
    assert len(commands(run)) == 2
    assert invoke(run, "undo", "2").exit_code == 0
    assert commands(run)[2:] == [
        {"module": "cb", "op": "enable", "id": "heartbeat", "undoes": 3},
        {"module": "cb", "op": "set", "id": "heartbeat", "params": {"every": 10}, "undoes": 2},
    ]
    run.apply({"step": 3}, ["train_step_end"])
    status = run.modules["cb"].status()["heartbeat"]
    assert (status["enabled"], status["params"]) == (True, {"every": 10})
    again = invoke(run, "undo")  # both undone: nothing is left to undo
    assert again.exit_code == 1 and "nothing to undo" in again.stderr


def test_undo_refuses_a_change_whose_previous_value_is_unknown(run: HotKernel) -> None:
    # a key the heartbeat accepts but that had no value hotcb knew: its default inside it
    # (kept as a frozenset, which is not a value a command can carry)
    assert invoke(run, "cb", "set", "heartbeat", "events=[train_step_end]").exit_code == 0
    run.apply({"step": 2}, ["train_step_end"])
    entry = [json.loads(x) for x in run.run_dir.ledger.read_text().splitlines()][-1]
    assert (entry["decision"], entry["payload"]["previous"]) == ("applied", {})
    result = invoke(run, "undo")
    assert result.exit_code == 1
    assert "cannot undo exactly: #2 set events of 'heartbeat'" in result.stderr
    assert len(commands(run)) == 1


def test_undo_is_for_one_run(run: HotKernel) -> None:
    result = CliRunner().invoke(cli, ["--sweep", str(run.run_dir.path), "undo"])
    assert result.exit_code == 1 and "undo reverts the changes of one run" in result.stderr


def test_undo_of_a_replacing_load_loads_the_replaced_callback_back(run: HotKernel) -> None:
    load = ["cb", "load", "heartbeat", "--path", HEARTBEAT.path, "--symbol", HEARTBEAT.symbol]
    assert invoke(run, *load, "--init", "every=3", "--disabled").exit_code == 0
    run.apply({"step": 2}, ["train_step_end"])
    assert invoke(run, "undo").exit_code == 0
    assert commands(run)[1] == {
        "module": "cb",
        "op": "load",
        "id": "heartbeat",
        "target": HEARTBEAT.to_dict(),
        "init": {"every": 10},
        "undoes": 2,
    }
    run.apply({"step": 3}, ["train_step_end"])
    status = run.modules["cb"].status()["heartbeat"]
    assert (status["enabled"], status["params"]) == (True, {"every": 10})
