"""The reference project's kernel options on HotKernel: ``debounce_steps`` (read commands at
most every N ``apply`` calls, on top of the time gate), ``log_path`` (hotcb's log appended to
a file) and ``poll_interval_sec`` (``poll_interval``), driven through the command file and
checked in the ledger and the log file."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.files import NotRegularFileError
from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT, external_entries


def queue(kernel: HotKernel, **command: Any) -> None:
    with open(kernel.run_dir.commands, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(command) + "\n")


def steps(kernel: HotKernel, first: int, last: int) -> None:
    for step in range(first, last + 1):
        kernel.apply({"step": step}, ["train_step_end"])


def test_debounce_steps_reads_commands_every_n_calls(kernel_factory: Callable[..., Any]) -> None:
    kernel = kernel_factory(debounce_steps=3, register=False)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT, init={"every": 10}))
    steps(kernel, 1, 1)  # reads at the first call
    queue(kernel, module="cb", op="set_params", id="hb", params={"every": 2})
    steps(kernel, 2, 3)
    assert external_entries(kernel.run_dir.path) == []  # 2 calls since the read: not yet
    steps(kernel, 4, 4)
    [entry] = external_entries(kernel.run_dir.path)
    assert (entry.op, entry.decision, entry.step) == ("set", "applied", 4)
    queue(kernel, module="cb", op="disable", id="hb")
    steps(kernel, 5, 7)
    assert [(e.op, e.step) for e in external_entries(kernel.run_dir.path)] == [
        ("set", 4),
        ("disable", 7),
    ]


def test_debounce_steps_is_on_top_of_the_time_gate(kernel_factory: Callable[..., Any]) -> None:
    kernel = kernel_factory(debounce_steps=2, poll_interval=3600, register=False)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    steps(kernel, 1, 1)
    queue(kernel, op="disable", id="hb")
    steps(kernel, 2, 50)  # 49 calls, but the hour has not passed
    assert external_entries(kernel.run_dir.path) == []
    assert kernel.callbacks.status()["hb"]["enabled"] is True


def test_debounce_steps_one_keeps_the_plain_apply(kernel_factory: Callable[..., Any]) -> None:
    kernel = kernel_factory(register=False)
    assert "apply" not in vars(kernel)  # no per-call counter on the default hot path
    assert kernel_factory(kernel.run_dir.path.parent / "b", debounce_steps=4, register=False)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_debounce_steps_must_be_a_positive_integer(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(ValueError, match="debounce_steps must be an integer >= 1"):
        HotKernel(run_dir=tmp_path / "run", debounce_steps=bad, register=False)
    HotKernel(run_dir=tmp_path / "run", register=False).close()  # the dir is not left locked


def test_poll_interval_sec_is_poll_interval(kernel_factory: Callable[..., Any]) -> None:
    kernel = kernel_factory(poll_interval_sec=0.25, register=False)
    assert kernel.poll_interval == 0.25


def test_log_path_appends_hotcb_log_to_a_private_file(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    logger = logging.getLogger("hotcb")
    before = (logger.level, logger.propagate, list(logger.handlers))
    log_file = tmp_path / "logs" / "hotcb.log"
    kernel = kernel_factory(log_path=str(log_file), register=False)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    queue(kernel, module="cb", op="set_params", id="hb", params={"every": 3})
    queue(kernel, module="cb", op="set_params", id="hb", params={"evry": 3})
    steps(kernel, 1, 1)
    kernel.close()
    lines = log_file.read_text().splitlines()
    assert any(line.endswith("INFO hotcb: load hb applied") for line in lines), lines
    assert any(line.endswith("INFO hotcb: set hb applied") for line in lines), lines
    failed = [line for line in lines if " ERROR hotcb: set hb failed" in line]
    assert len(failed) == 1 and "'evry'" in failed[0]
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_log_path_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    os.symlink(target, tmp_path / "hotcb.log")
    with pytest.raises(NotRegularFileError):
        HotKernel(run_dir=tmp_path / "run", log_path=tmp_path / "hotcb.log", register=False)
    assert target.read_text() == "keep\n"
    HotKernel(run_dir=tmp_path / "run", register=False).close()  # the run dir is free again


def test_the_standalone_controller_takes_them_too(tmp_path: Path) -> None:
    # the reference's HotController docstring: config, commands, debounce_steps, log_path
    from hotcb.modules.cb import HotController

    (tmp_path / "hotcb.yaml").write_text(
        "version: 1\ncallbacks:\n  hb:\n    target: " + json.dumps(HEARTBEAT.to_dict()) + "\n"
    )
    ctl = HotController(
        str(tmp_path / "hotcb.yaml"),
        str(tmp_path / "hotcb.commands.jsonl"),
        poll_interval_sec=0,
        debounce_steps=2,
        log_path=str(tmp_path / "hotcb.log"),
    )
    try:
        for step in range(1, 4):
            ctl.apply({"step": step}, ["train_step_end"])
        assert ctl.status()["hb"]["enabled"] is True
    finally:
        ctl.close()
    assert "load hb applied" in (tmp_path / "hotcb.log").read_text()
