"""``run_dir/hotcb.yaml`` without ``config_path``: the kernel follows it once it exists, in
the reference project's shape (``version: 1``, ``cb: {callbacks: ...}``) as in ours
(``callbacks:`` at the top). Checked in the ledger and the live set."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotcb.distributed import DistributedHotKernel
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from tests.helpers import HEARTBEAT_DICT

TIMING = {"kind": "module", "path": "hotcb.modules.cb.callbacks.timing", "symbol": "TimingCallback"}


def write(run_dir: Path, document: Any) -> None:
    path = run_dir / "hotcb.yaml"
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    st = path.stat()  # a new mtime even within the clock's resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def reference_shape(callbacks: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "core": {"freeze_mode": "off"}, "cb": {"callbacks": callbacks}}


def our_shape(callbacks: dict[str, Any]) -> dict[str, Any]:
    return {"callbacks": callbacks}


def config_entries(kernel: HotKernel) -> list[Any]:
    return [e for e in read_ledger(kernel.run_dir.ledger).entries if e.source == "config"]


@pytest.mark.parametrize("shape", [reference_shape, our_shape], ids=["reference", "ours"])
def test_the_kernel_follows_run_dir_hotcb_yaml(
    kernel_factory: Callable[..., Any], tmp_path: Path, shape: Callable[..., Any]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write(
        run_dir,
        shape(
            {
                "timing": {"enabled": True, "target": TIMING, "init": {"every": 50}, "params": {}},
                "hb": {"target": HEARTBEAT_DICT, "init": {"every": 5}},
            }
        ),
    )
    kernel = kernel_factory(run_dir, register=False)  # no config_path
    kernel.apply({"step": 1}, ["train_step_end"])
    assert [(e.op, e.id, e.decision) for e in config_entries(kernel)] == [
        ("load", "timing", "applied"),
        ("load", "hb", "applied"),
    ]
    # a changed param is a set (once), enabled: false a disable, a removed id an unload
    write(
        run_dir,
        shape({"timing": {"target": TIMING, "init": {"every": 50}, "params": {"window": 10},
                          "enabled": False}}),
    )  # fmt: skip
    for step in range(2, 5):
        kernel.apply({"step": step}, ["train_step_end"])
    assert [(e.op, e.id, e.step) for e in config_entries(kernel)[2:]] == [
        ("set", "timing", 2),
        ("disable", "timing", 2),
        ("unload", "hb", 2),
    ]
    assert kernel.callbacks.status() == {
        "timing": {**kernel.callbacks.status()["timing"], "enabled": False}
    }
    assert kernel.callbacks.get("timing").window == 10


def test_an_invalid_file_keeps_the_set_and_is_reported_once(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write(run_dir, reference_shape({"hb": {"target": HEARTBEAT_DICT}}))
    kernel = kernel_factory(run_dir, register=False)
    kernel.apply({"step": 1}, ["train_step_end"])
    write(run_dir, "version: 1\ncb:\n  callbacks: {hb: [oops\n")
    for step in range(2, 6):
        kernel.apply({"step": step}, ["train_step_end"])
    failed = [e for e in config_entries(kernel) if e.decision == "failed"]
    assert len(failed) == 1
    assert failed[0].location is not None and failed[0].location["path"].endswith("hotcb.yaml")
    assert "not valid YAML" in (failed[0].error or "")
    assert list(kernel.callbacks.status()) == ["hb"]  # kept
    # wrong keys are named with where they are, in the reference's shape too
    write(run_dir, reference_shape({"hb": {"target": HEARTBEAT_DICT, "evry": 3}}))
    kernel.apply({"step": 6}, ["train_step_end"])
    bad = config_entries(kernel)[-1]
    assert (bad.decision, bad.location and bad.location.get("key")) == ("failed", "cb.callbacks.hb")
    write(run_dir, {"callbacks": {}, "cb": {"callbacks": {}}})
    kernel.apply({"step": 7}, ["train_step_end"])
    assert "listed twice" in (config_entries(kernel)[-1].error or "")
    write(run_dir, {"version": 2, "callbacks": {}})
    kernel.apply({"step": 8}, ["train_step_end"])
    assert config_entries(kernel)[-1].error == "version must be 1, got 2"
    assert list(kernel.callbacks.status()) == ["hb"]
    write(run_dir, reference_shape({}))  # fixed: the file's callback goes
    kernel.apply({"step": 9}, ["train_step_end"])
    assert (config_entries(kernel)[-1].op, kernel.callbacks.status()) == ("unload", {})


def test_commands_are_left_alone_by_the_file(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    kernel = kernel_factory(register=False)
    with open(kernel.run_dir.commands, "a") as fh:  # loaded by a command, not by the file
        fh.write(json.dumps({"module": "cb", "op": "load", "id": "t", "target": TIMING}) + "\n")
    kernel.apply({"step": 1}, ["train_step_end"])
    write(kernel.run_dir.path, reference_shape({"hb": {"target": HEARTBEAT_DICT}}))
    kernel.apply({"step": 2}, ["train_step_end"])
    assert sorted(kernel.callbacks.status()) == ["hb", "t"]


def test_no_file_needed_and_an_explicit_config_path_wins(
    kernel_factory: Callable[..., Any], tmp_path: Path
) -> None:
    kernel = kernel_factory(register=False)
    kernel.apply({"step": 1}, ["train_step_end"])
    assert config_entries(kernel) == [] and kernel.callbacks.status() == {}
    other = tmp_path / "elsewhere.yaml"
    other.write_text(yaml.safe_dump(our_shape({"t": {"target": TIMING}})))
    run_dir = tmp_path / "run2"
    run_dir.mkdir()
    write(run_dir, our_shape({"hb": {"target": HEARTBEAT_DICT}}))
    kernel2 = kernel_factory(run_dir, config_path=other, register=False)
    kernel2.apply({"step": 1}, ["train_step_end"])
    assert list(kernel2.callbacks.status()) == ["t"]


def test_a_distributed_kernel_does_not_follow_it(tmp_path: Path) -> None:
    # the DDP kernel reads commands at sync points only: the file is not followed there
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write(run_dir, our_shape({"hb": {"target": HEARTBEAT_DICT}}))
    kernel = DistributedHotKernel(run_dir=run_dir, sync_every=1, register=False)
    try:
        kernel.apply({"step": 1}, ["train_step_end"])
        assert kernel.status()["callbacks"] == {}
    finally:
        kernel.close()
