"""Disk full, commands file deleted or truncated: training goes on (the run dir removed:
see test_run_dir_faults.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream
from tests.helpers import HEARTBEAT_DICT

DISK_FULL = f"""
HEARTBEAT = {HEARTBEAT_DICT!r}
import resource, signal, sys
from hotcb.kernel import HotKernel
from hotcb.stream import CommandStream
run = sys.argv[1]
k = HotKernel(run_dir=run, poll_interval=0, register=False)
stream = CommandStream(run + "/hotcb.commands.jsonl")
stream.append({{"op": "load", "id": "hb", "target": HEARTBEAT}})
for i in range(200):
    stream.append({{"op": "set", "id": "hb", "params": {{"every": 1 + i}}}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
# from here on no file of this process may grow past 8 KiB: a real EFBIG from the kernel
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
for step in range(1, 401):
    k.apply({{"step": step}}, ["train_step_end"])
print("finished", k.modules["cb"].status()["hb"]["params"], flush=True)
k.close()
"""


@pytest.mark.subprocess
def test_disk_full_on_ledger_write_is_reported_once_and_training_continues(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(run)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "finished {'every': 200}" in result.stdout  # every command still applied
    assert result.stderr.count("cannot write the ledger") == 1
    assert "File too large" in result.stderr
    assert (run / "hotcb.applied.jsonl").stat().st_size <= 8192
    assert read_ledger(run / "hotcb.applied.jsonl").bad_lines == []


def test_commands_file_truncated_or_deleted_mid_run(kernel_factory: Any) -> None:
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    stream.append({"op": "load", "id": "hb", "target": HEARTBEAT_DICT})
    stream.append({"op": "set", "id": "hb", "params": {"every": 3}})
    kernel.apply({"step": 1}, ["train_step_end"])
    kernel.run_dir.commands.write_text("")  # truncated by someone
    stream.append({"op": "set", "id": "hb", "params": {"every": 4}})
    kernel.apply({"step": 2}, ["train_step_end"])
    kernel.run_dir.commands.unlink()  # deleted
    kernel.apply({"step": 3}, ["train_step_end"])
    stream.append({"op": "set", "id": "hb", "params": {"every": 5}})  # and written anew
    kernel.apply({"step": 4}, ["train_step_end"])
    entries = read_ledger(kernel.run_dir.ledger).entries
    resets = [e for e in entries if e.op == "reset"]
    assert [("shrank" in (e.error or ""), "removed" in (e.error or "")) for e in resets] == [
        (True, False),
        (False, True),
    ]
    sets = [(e.payload["params"]["every"], e.step) for e in entries if e.op == "set"]
    assert sets == [(3, 1), (4, 2), (5, 4)]
    assert kernel.modules["cb"].status()["hb"]["params"] == {"every": 5}
