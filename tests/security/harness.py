"""Shared by the security tests: another user, a finished Hydra-like run, the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

#: ``nobody``: files given to it are "another user's" for this process.
OTHER_UID = 65534
HOTCB = shutil.which("hotcb") or ""
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to give files to another user"
)


def give_away(*paths: Path) -> None:
    """Make ``paths`` (and everything below a directory) owned by another user."""
    for path in paths:
        os.chown(path, OTHER_UID, OTHER_UID, follow_symlinks=False)
        if path.is_dir() and not path.is_symlink():
            for sub in path.rglob("*"):
                os.chown(sub, OTHER_UID, OTHER_UID, follow_symlinks=False)


def mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


def hotcb(*args: str, umask: int = -1) -> subprocess.CompletedProcess[str]:
    """The real ``hotcb`` CLI as a subprocess (it imports this checkout via PYTHONPATH)."""
    assert HOTCB, "the hotcb console script is not on PATH"
    return subprocess.run(
        [HOTCB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
        umask=umask,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI failed as documented: exit 1, one ``hotcb: error:`` line on stderr."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hotcb: error: "), result.stderr
    return lines[0]


@dataclass(frozen=True)
class FinishedRun:
    """A Hydra-like run dir that ended with ``heartbeat`` loaded (``every=7``)."""

    app: Path
    conf: Path
    run: Path

    @property
    def option_dir(self) -> Path:
        return self.conf / "hotcb" / "callbacks"


def make_finished_run(tmp_path: Path) -> FinishedRun:
    """A run dir as a Hydra app leaves it: config dir, outputs/<date>/<time>, launch record."""
    app = tmp_path / "app"
    conf = app / "conf"
    conf.mkdir(parents=True)
    run = app / "outputs" / "2026-11-25" / "10-02-21"
    kernel = HotKernel(run_dir=run, register=False)
    kernel.submit(  # a live change: an export has something to write
        Op(op="load", id="heartbeat", target=HEARTBEAT, init={"every": 7}), source="external"
    )
    kernel.apply({"step": 3}, ["train_step_end"])
    kernel.close()
    (run / ".hydra").mkdir()
    sources = [{"provider": "main", "path": str(conf), "schema": "file"}]
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"config_sources": sources}}})
    )
    launch: dict[str, Any] = {"argv": [str(app / "train.py")], "overrides": [], "cwd": str(app)}
    (run / "hotcb.launch.json").write_text(json.dumps(launch))
    return FinishedRun(app=app, conf=conf, run=run)
