"""Files other users can change are refused, with the fix; once fixed, they are read."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT_DICT

CALLBACK = (
    "class Cb:\n    def __init__(self, id='cb'): self.id = id\n    def handle(self, e, env): pass\n"
    "    def set_params(self, **kw): pass\n"
)


def test_world_writable_commands_file_is_refused_until_fixed(
    kernel_factory: Any, caplog: Any
) -> None:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(
        {"op": "load", "id": "hb", "target": HEARTBEAT_DICT}
    )
    os.chmod(kernel.run_dir.commands, 0o666)
    for step in range(1, 4):
        kernel.apply({"step": step}, ["train_step_end"])
    assert kernel.modules["cb"].status() == {}
    refusals = [e for e in read_ledger(kernel.run_dir.ledger).entries if e.op == "refuse"]
    assert len(refusals) == 1  # said once, not once per poll
    assert f"chmod o-w {kernel.run_dir.commands}" in (refusals[0].error or "")
    assert "writable by other users (mode 0666)" in caplog.text
    os.chmod(kernel.run_dir.commands, 0o600)
    kernel.apply({"step": 4}, ["train_step_end"])
    assert list(kernel.modules["cb"].status()) == ["hb"]


def test_group_writable_is_accepted_with_one_warning(kernel_factory: Any, caplog: Any) -> None:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(
        {"op": "load", "id": "hb", "target": HEARTBEAT_DICT}
    )
    os.chmod(kernel.run_dir.commands, 0o620)
    with caplog.at_level(logging.WARNING, logger="hotcb"):
        for step in range(1, 4):
            kernel.apply({"step": step}, ["train_step_end"])
    assert list(kernel.modules["cb"].status()) == ["hb"]
    assert caplog.text.count("group-writable") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_file_owned_by_another_user_is_refused(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(
        {"op": "load", "id": "hb", "target": HEARTBEAT_DICT}
    )
    os.chown(kernel.run_dir.commands, 54321, -1)
    kernel.apply({"step": 1}, ["train_step_end"])
    assert kernel.modules["cb"].status() == {}
    refusal = read_ledger(kernel.run_dir.ledger).entries[-1]
    assert "owned by uid 54321" in (refusal.error or "") and "chown 0" in (refusal.error or "")


def test_world_writable_desired_state_file_is_refused(tmp_path: Path) -> None:
    from hotcb.modules.cb import HotController

    config = tmp_path / "hotcb.yaml"
    config.write_text(
        "callbacks:\n  hb:\n    target: {kind: module, path: hotcb.modules.cb.callbacks.heartbeat,"
        " symbol: HeartbeatCallback}\n"
    )
    os.chmod(config, 0o646)
    ctl = HotController(config_path=config, poll_interval=0)
    ctl.apply({"step": 1}, ["train_step_end"])
    assert ctl.status() == {}
    os.chmod(config, 0o644)
    ctl.apply({"step": 2}, ["train_step_end"])
    assert list(ctl.status()) == ["hb"]
    ctl.close()


@pytest.mark.parametrize(
    ("file_mode", "dir_mode", "refused"),
    [
        (0o644, 0o755, None),
        (0o646, 0o755, "writable by other users"),
        (0o644, 0o777, "its directory"),
        (0o644, 0o1777, None),
    ],
)
def test_python_file_trust(
    kernel_factory: Any, tmp_path: Path, file_mode: int, dir_mode: int, refused: str | None
) -> None:
    kernel = kernel_factory()
    d = tmp_path / "cbs"
    d.mkdir()
    src = d / "cb.py"
    src.write_text(CALLBACK)
    os.chmod(src, file_mode)
    os.chmod(d, dir_mode)
    CommandStream(kernel.run_dir.commands).append(
        {
            "op": "load",
            "id": "cb",
            "target": {"kind": "python_file", "path": str(src), "symbol": "Cb"},
        }
    )
    kernel.apply({"step": 1}, ["train_step_end"])
    entry = read_ledger(kernel.run_dir.ledger).entries[-1]
    if refused is None:
        assert entry.decision == "applied"
    else:
        assert (
            entry.decision == "failed"
            and refused in (entry.error or "")
            and "chmod o-w" in (entry.error or "")
        )
