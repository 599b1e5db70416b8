"""A run dir other users can write to (a Hydra output dir made under umask 000)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream
from tests.security.harness import HEARTBEAT, give_away, mode, needs_root


@needs_root
def test_world_writable_run_dir_warns_once_and_still_refuses_a_planted_commands_file(
    tmp_path: Path, caplog: Any
) -> None:
    outputs = tmp_path / "outputs"
    run = outputs / "2026-11-25" / "10-02-21"
    run.mkdir(parents=True)
    for d in (outputs, outputs / "2026-11-25", run):
        os.chmod(d, 0o777)  # what Hydra leaves under umask 000
    # another user plants a commands file there
    CommandStream(run / "hotcb.commands.jsonl").append(
        {"op": "load", "id": "planted", "target": HEARTBEAT.to_dict()}
    )
    give_away(run / "hotcb.commands.jsonl")

    with caplog.at_level(logging.WARNING, logger="hotcb"):
        kernel = HotKernel(run_dir=run, poll_interval=0, register=False)
        for step in range(1, 4):
            kernel.apply({"step": step}, ["train_step_end"])
    try:
        assert caplog.text.count("other users can add, replace or remove files") == 1
        entries = read_ledger(run / "hotcb.applied.jsonl").entries
        warns = [e for e in entries if (e.module, e.op) == ("kernel", "warn")]
        assert len(warns) == 1
        error = warns[0].error or ""
        assert f"fix with: chmod o-w {outputs} {outputs / '2026-11-25'} {run}" in error
        state = json.loads((run / "hotcb.state.json").read_text())
        assert state["warnings"] == [error]
        # the planted file is refused: nothing from it runs
        assert kernel.modules["cb"].status() == {}
        assert any(e.op == "refuse" and "owned by uid 65534" in (e.error or "") for e in entries)
        # the kernel does not change the mode of a dir it did not create
        assert mode(run) == 0o777
        # `hotcb status` says it too
        result = CliRunner().invoke(cli, ["--dir", str(run), "status"])
        assert result.exit_code == 0
        assert f"hotcb: warning: run dir {run}: other users can add" in result.stderr
    finally:
        kernel.close()


def test_sticky_or_private_run_dir_gives_no_warning_but_an_open_parent_does(
    tmp_path: Path,
) -> None:
    sticky = tmp_path / "scratch"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)  # like /tmp: others cannot replace what is ours
    quiet = HotKernel(run_dir=sticky / "run", register=False)
    quiet.close()
    assert quiet.warnings == []
    assert not [
        e for e in read_ledger(sticky / "run" / "hotcb.applied.jsonl").entries if e.op == "warn"
    ]
    assert json.loads((sticky / "run" / "hotcb.state.json").read_text())["warnings"] == []

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    loud = HotKernel(run_dir=shared / "run", register=False)  # created by the kernel: 0700
    loud.close()
    assert mode(shared / "run") == 0o700
    assert loud.warnings and f"chmod o-w {shared}" in loud.warnings[0]
    assert f"{shared / 'run'} (writable" not in loud.warnings[0]
