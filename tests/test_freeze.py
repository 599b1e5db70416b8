"""Freeze modes in a kernel on real files: a frozen run records each command as ignored and
changes nothing; ``freeze`` itself is always taken, and a resumed run keeps a live switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotcb.freeze import freeze_op
from hotcb.hydra.hydrate import HydrationError, kernel_config
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.ops import Op
from hotcb.state import read_state
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT


def kernel_at(run: Path, **kwargs: Any) -> HotKernel:
    return HotKernel(run_dir=run, poll_interval=0, register=False, **kwargs)


def steps(kernel: HotKernel, *numbers: int) -> None:
    for n in numbers:
        kernel.apply({"step": n}, ["train_step_end"])


def since_start(run: Path) -> list[tuple[Any, ...]]:
    return [
        (e.source, e.module, e.op, e.decision, e.step)
        for e in read_ledger(run / "hotcb.applied.jsonl").entries
        if e.op != "resume"
    ]


@pytest.mark.parametrize("mode", ["prod", "replay"])
def test_a_frozen_run_ignores_commands_until_it_is_thawed(tmp_path: Path, mode: str) -> None:
    run = tmp_path / "run"
    kernel = kernel_at(run, freeze=mode)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT, init={"every": 4}))
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "set", "id": "hb", "params": {"every": 2}})
    stream.append({"op": "unload", "id": "hb"})
    steps(kernel, 1)
    assert kernel.callbacks.status()["hb"]["params"] == {"every": 4}
    assert read_state(kernel.run_dir.state)["freeze"] == mode  # type: ignore[index]
    stream.append(freeze_op("off").to_dict())
    stream.append({"op": "set", "id": "hb", "params": {"every": 3}})
    steps(kernel, 2)
    assert kernel.callbacks.status()["hb"]["params"] == {"every": 3}
    kernel.close()
    entries = read_ledger(run / "hotcb.applied.jsonl").entries
    assert [(e.source, e.module, e.op, e.decision, e.step) for e in entries] == [
        ("config", "kernel", "freeze", "applied", 0),
        ("config", "cb", "load", "applied", 0),
        ("external", "cb", "set", "ignored", 1),
        ("external", "cb", "unload", "ignored", 1),
        ("external", "kernel", "freeze", "applied", 2),
        ("external", "cb", "set", "applied", 2),
    ]
    assert entries[2].error == (
        f"the run is frozen (freeze: {mode}): it takes no command from outside; "
        "`hotcb freeze --mode off` lets changes in again"
    )
    assert entries[4].payload["params"] == {"mode": "off"}


def test_a_bad_mode_is_a_failed_entry_and_the_mode_stays(tmp_path: Path) -> None:
    kernel = kernel_at(tmp_path / "run", freeze="prod")
    CommandStream(kernel.run_dir.commands).append(
        {"module": "kernel", "op": "freeze", "id": "kernel", "params": {"mode": "thaw"}}
    )
    steps(kernel, 1)
    assert kernel.freeze == "prod"
    kernel.close()
    last = read_ledger(kernel.run_dir.ledger).entries[-1]
    assert (last.op, last.decision, last.error) == (
        "freeze",
        "failed",
        "freeze must be one of off, prod, replay; got 'thaw'",
    )


def test_a_resumed_run_keeps_the_mode_switched_live(tmp_path: Path) -> None:
    run = tmp_path / "run"
    kernel = kernel_at(run)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT))
    CommandStream(kernel.run_dir.commands).append(freeze_op("prod").to_dict())
    steps(kernel, 1)
    kernel.close()
    again = kernel_at(run)  # started as before (freeze off): the live switch wins
    assert again.freeze == "prod"
    again.close()
    assert since_start(run)[-1] == ("replay", "kernel", "freeze", "applied", 0)
    third = kernel_at(run, freeze="off")
    assert third.freeze == "prod"
    third.close()


def test_hydra_setting(tmp_path: Path) -> None:
    cfg = {"hotcb": {"freeze": False, "callbacks": {}}}  # YAML 1.1 reads a bare off as false
    assert kernel_config(cfg, run_dir=tmp_path).settings == {"freeze": "off"}
    cfg["hotcb"]["freeze"] = "frozen"
    with pytest.raises(HydrationError) as raised:
        kernel_config(cfg, run_dir=tmp_path)
    assert (
        str(raised.value) == "hotcb.freeze: freeze must be one of off, prod, replay; got 'frozen'"
    )
    with pytest.raises(ValueError, match="freeze must be one of off, prod, replay; got 'yes'"):
        HotKernel(run_dir=tmp_path / "r", freeze="yes", register=False)
