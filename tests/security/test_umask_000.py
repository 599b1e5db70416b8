"""Under umask 000 what hotcb creates is still private: dirs 0700, files 0600.

Directories that already exist are left as they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotcb.stream import CommandStream
from tests.security.harness import FinishedRun, hotcb, mode

pytestmark = pytest.mark.subprocess

TRAINER = """
import sys, time
from hotcb.kernel import HotKernel
kernel = HotKernel(run_dir=sys.argv[1], poll_interval=0)
print("ready", flush=True)
step = 0
while True:
    step += 1
    kernel.apply({"step": step, "log": lambda m: None}, ["train_step_end"])
    time.sleep(0.002)
"""
CALLBACK = (
    "class Cb:\n    def __init__(self, id='cb'): self.id = id\n"
    "    def handle(self, e, env): pass\n    def set_params(self, **kw): pass\n"
)


def test_training_process_under_umask_000_creates_everything_private(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    os.chmod(existing, 0o755)
    home = existing / "cache" / "hotcb"  # $HOTCB_HOME and its parent cache/ do not exist yet
    run = existing / "outputs" / "2026-11-25" / "10-02-21"
    src = tmp_path / "cb.py"
    src.write_text(CALLBACK)
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAINER, str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOTCB_HOME": str(home)},
        umask=0,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        CommandStream(run / "hotcb.commands.jsonl").append(
            {
                "op": "load",
                "id": "cb",
                "target": {"kind": "python_file", "path": str(src), "symbol": "Cb"},
            }
        )
        deadline = time.monotonic() + 30
        while not list((run / "hotcb.sources").glob("*.py")):
            assert time.monotonic() < deadline, "the load was not applied"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    made = [
        existing / "cache",
        home,
        home / "runs",
        existing / "outputs",
        existing / "outputs" / "2026-11-25",
        run,
        run / "hotcb.sources",
    ]
    assert {str(d): oct(mode(d)) for d in made} == {str(d): "0o700" for d in made}
    files = [*home.glob("runs/*.json"), *run.glob("hotcb.*.json*"), *run.glob("hotcb.sources/*")]
    assert len(files) >= 4
    assert {str(f): oct(mode(f)) for f in files} == {str(f): "0o600" for f in files}
    assert mode(existing) == 0o755  # existing parents are left alone


def test_export_under_umask_000_is_private(finished_run: FinishedRun) -> None:
    os.chmod(finished_run.conf, 0o755)
    result = hotcb("--dir", str(finished_run.run), "export-config", "--name", "mine", umask=0)
    assert result.returncode == 0, result.stderr
    exported = finished_run.option_dir / "mine.yaml"
    assert result.stdout.startswith(f"wrote {exported}")
    assert mode(exported) == 0o600
    assert mode(finished_run.conf / "hotcb") == mode(finished_run.option_dir) == 0o700
    assert mode(finished_run.conf) == 0o755
    out = finished_run.app / "elsewhere" / "cbs.yaml"
    result = hotcb("--dir", str(finished_run.run), "export-config", "--out", str(out), umask=0)
    assert result.returncode == 0, result.stderr
    assert (mode(out.parent), mode(out)) == (0o700, 0o600)
