"""The kernel writes only inside its run dir, owner-only, whatever the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream

SCRIPT = """
import os, sys
os.umask(int(sys.argv[2], 8))
from hotcb.kernel import HotKernel
from hotcb.stream import CommandStream
k = HotKernel(run_dir=sys.argv[1], poll_interval=0)
CommandStream(k.run_dir.commands).append({"op": "load", "id": "cb", "target": {"kind": "python_file",
    "path": sys.argv[3], "symbol": "Cb"}})
k.apply({"step": 1}, ["train_step_end"])
k.close()
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("umask", ["000", "022"])
def test_run_dir_files_are_owner_only_whatever_the_umask(tmp_path: Path, umask: str) -> None:
    src = tmp_path / "cb.py"
    src.write_text(
        "class Cb:\n    def __init__(self, id='cb'): self.id = id\n"
        "    def handle(self, e, env): pass\n    def set_params(self, **kw): pass\n"
    )
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run), umask, str(src)], check=True, timeout=60
    )
    paths = [run, *run.rglob("*")]
    assert len(paths) >= 5  # dir, commands, ledger, state, sources/, one captured source
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, f"{p} has mode {mode:04o}"


@pytest.mark.parametrize(
    "command",
    [
        {
            "op": "load",
            "id": "../../escape",
            "target": {"kind": "module", "path": "a", "symbol": "B"},
        },
        {"op": "load", "id": "x", "target": {"kind": "module", "path": "a", "symbol": "../../B"}},
        {"op": "set", "id": "/etc/passwd", "params": {"a": 1}},
        {
            "op": "load",
            "id": "x",
            "target": {
                "kind": "module",
                "path": "hotcb.modules.cb.callbacks.timing",
                "symbol": "TimingCallback",
            },
            "init": {"../x": 1},
        },
    ],
)
def test_no_command_writes_outside_the_run_dir(
    kernel_factory: Any, tmp_path: Path, command: dict[str, Any]
) -> None:
    run = tmp_path / "run"
    kernel = kernel_factory(run)
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(run)}
    CommandStream(kernel.run_dir.commands).append(command)
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.close()
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(run)}
    assert after == before
    assert read_ledger(run / "hotcb.applied.jsonl").entries[-1].decision == "failed"
    assert json.loads((run / "hotcb.state.json").read_text())["callbacks"] == {}
    assert sorted(os.listdir(run / "hotcb.sources")) == []
