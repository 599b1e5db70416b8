"""HotController standalone: a desired-state YAML and a command file, no kernel code in sight."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

from hotcb.ledger import read_ledger
from hotcb.modules.cb import CallbackModule, CallbackTarget, HotCallback, HotController
from hotcb.modules.cb.callbacks.heartbeat import HeartbeatCallback
from hotcb.modules.cb.callbacks.timing import TimingCallback
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT, HEARTBEAT_DICT


def write_yaml(path: Path, callbacks: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"callbacks": callbacks}))
    bump = time.time_ns() + 1_000_000 * len(path.read_bytes())
    os.utime(path, ns=(bump, bump))  # make every rewrite visible even within one mtime tick


def test_public_names_hold() -> None:
    assert CallbackTarget.__module__ == "hotcb.ops"
    assert isinstance(TimingCallback(), HotCallback) and isinstance(
        HeartbeatCallback(), HotCallback
    )
    assert CallbackModule.name == "cb"


def test_desired_state_file_is_reconciled_idempotently(tmp_path: Path, log_lines: Any) -> None:
    config = tmp_path / "hotcb.yaml"
    commands = tmp_path / "hotcb.commands.jsonl"
    write_yaml(config, {"hb": {"target": HEARTBEAT_DICT, "init": {"every": 2}}})
    ctl = HotController(config_path=config, commands_path=commands, poll_interval=0)
    try:
        for n in range(1, 5):
            ctl.apply({"step": n, "log": log_lines}, ["train_step_end"])
        assert log_lines.lines == ["[hb] train_step_end step=2", "[hb] train_step_end step=4"]
        # same content again: nothing to do
        write_yaml(config, {"hb": {"target": HEARTBEAT_DICT, "init": {"every": 2}}})
        ctl.apply({"step": 5, "log": log_lines}, ["train_step_end"])
        assert [e.op for e in read_ledger(tmp_path / "hotcb.applied.jsonl").entries] == ["load"]
        # a param change becomes a set; enabled: false a disable
        write_yaml(
            config,
            {
                "hb": {
                    "target": HEARTBEAT_DICT,
                    "init": {"every": 2},
                    "params": {"every": 3},
                    "enabled": False,
                }
            },
        )
        ctl.apply({"step": 6, "log": log_lines}, ["train_step_end"])
        assert (
            ctl.status()["hb"]["params"] == {"every": 3} and ctl.status()["hb"]["enabled"] is False
        )
        # a command from the command file lives beside the YAML's set
        CommandStream(commands).append({"op": "load", "id": "extra", "target": HEARTBEAT_DICT})
        write_yaml(config, {})
        ctl.apply({"step": 7, "log": log_lines}, ["train_step_end"])
        assert set(ctl.status()) == {"extra"}  # hb removed (the YAML owned it), extra kept
        ledger = read_ledger(tmp_path / "hotcb.applied.jsonl").entries
        assert [(e.op, e.id, e.source) for e in ledger] == [
            ("load", "hb", "config"),
            ("set", "hb", "config"),
            ("disable", "hb", "config"),
            ("load", "extra", "external"),
            ("unload", "hb", "config"),
        ]
    finally:
        ctl.close()


def test_bad_desired_state_file_is_reported_and_the_set_kept(
    tmp_path: Path, log_lines: Any
) -> None:
    config = tmp_path / "hotcb.yaml"
    write_yaml(config, {"hb": {"target": HEARTBEAT_DICT, "init": {"every": 1}}})
    ctl = HotController(config_path=config, poll_interval=0)
    try:
        ctl.apply({"step": 1, "log": log_lines}, ["train_step_end"])
        config.write_text("callbacks:\n  hb: {target: [unclosed\n")
        os.utime(config, ns=(time.time_ns() + 5_000_000,) * 2)
        ctl.apply({"step": 2, "log": log_lines}, ["train_step_end"])
        assert log_lines.lines[-1] == "[hb] train_step_end step=2"
        last = read_ledger(tmp_path / "hotcb.applied.jsonl").entries[-1]
        assert last.decision == "failed" and "not valid YAML" in (last.error or "")
        assert last.location == {"path": str(config), "line": 3}
    finally:
        ctl.close()


def test_in_memory_controller_needs_no_files(tmp_path: Path, log_lines: Any) -> None:
    from hotcb.ops import Op

    ctl = HotController()
    result = ctl.apply_op(Op(op="load", id="hb", target=HEARTBEAT, init={"every": 1}))  # type: ignore[arg-type]
    assert result.decision == "applied"
    ctl.apply({"step": 3, "log": log_lines}, ["train_step_end", "val_end"])
    assert log_lines.lines == ["[hb] train_step_end step=3"]
    assert list(tmp_path.iterdir()) == []
    ctl.close()


LR_MONITOR_TARGET = CallbackTarget(
    "module", "hotcb.modules.cb.callbacks.lr_monitor", "LrMonitorCallback"
)


def test_rank_zero_only_callbacks_are_loaded_but_not_run_on_other_ranks(log_lines: Any) -> None:
    from hotcb.ops import Op

    hb0_rank_zero_only = Op(
        op="load", id="hb0", target=HEARTBEAT, init={"every": 1, "_rank_zero_only_": True}
    )
    rank1 = HotController(rank=1)
    rank1.apply_op(Op(op="load", id="hb", target=HEARTBEAT, init={"every": 1}))
    rank1.apply_op(Op(op="load", id="lr", target=LR_MONITOR_TARGET, init={"every": 1}))
    rank1.apply_op(hb0_rank_zero_only)
    env = {"step": 1, "log": log_lines, "optimizer": None}
    rank1.dispatch(env, ["train_step_end"])
    # lr_monitor is rank_zero_only by class attribute, hb0 by the reserved init key
    assert log_lines.lines == ["[hb] train_step_end step=1"]
    assert set(rank1.status()) == {"hb", "lr", "hb0"}  # the state stays identical
    assert rank1.status()["hb0"]["params"] == {"every": 1, "_rank_zero_only_": True}

    # the key is hot: turn it off and hb0 runs on rank 1 too; a bad value fails that op only
    assert rank1.apply_op(Op(op="set", id="hb0", params={"_rank_zero_only_": False})).decision == (
        "applied"
    )
    bad = rank1.apply_op(Op(op="set", id="hb0", params={"_rank_zero_only_": "yes"}))
    assert bad.decision == "failed" and "_rank_zero_only_ must be true or false" in (
        bad.error or ""
    )
    log_lines.lines.clear()
    rank1.dispatch({**env, "step": 2}, ["train_step_end"])
    assert log_lines.lines == ["[hb] train_step_end step=2", "[hb0] train_step_end step=2"]

    rank0 = HotController(rank=0)
    rank0.apply_op(hb0_rank_zero_only)
    log_lines.lines.clear()
    rank0.dispatch(env, ["train_step_end"])
    assert log_lines.lines == ["[hb0] train_step_end step=1"]
