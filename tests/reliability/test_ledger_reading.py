"""Readers of the ledger (``hotcb log``, ``hotcb status``) never follow a symlink planted
at its name nor hang on a FIFO: one clear error line, exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hotcb.kernel import HotKernel

pytestmark = pytest.mark.subprocess

HOTCB = shutil.which("hotcb") or ""


def _run_dir(tmp_path: Path) -> Path:
    kernel = HotKernel(run_dir=tmp_path / "run", register=False)
    kernel.close()
    return tmp_path / "run"


def _hotcb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HOTCB, *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("command", ["log", "status"])
def test_a_fifo_ledger_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    run = _run_dir(tmp_path)
    ledger = run / "hotcb.applied.jsonl"
    ledger.unlink(missing_ok=True)
    os.mkfifo(ledger)
    result = _hotcb("--dir", str(run), command)  # the old reader blocked here forever
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1
    assert "FIFO" in result.stderr and str(ledger) in result.stderr


def test_a_symlinked_ledger_is_refused_not_followed(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    secret = tmp_path / "elsewhere.jsonl"
    secret.write_text(
        '{"seq": 1, "wall_time": 1.0, "step": 0, "epoch": null, "event": null, "module": "cb",'
        ' "op": "set", "id": "leaked", "source": "external", "decision": "applied"}\n'
    )
    ledger = run / "hotcb.applied.jsonl"
    ledger.unlink(missing_ok=True)
    ledger.symlink_to(secret)
    result = _hotcb("--dir", str(run), "log", "--json")
    assert result.returncode == 1, result
    assert "leaked" not in result.stdout
    assert "symbolic link" in result.stderr
