"""The three lines of the README, as separate processes, on a copy of the example app:

python examples/train.py 'hotcb/callbacks=[timing,heartbeat]'
hotcb cb set heartbeat every=5          # another terminal, mid-run, no --dir
hotcb export-config                      # then start the next run from the export
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import read_ledger

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[2]
HOTCB = shutil.which("hotcb")
VIZ = """
class FeatureViz:
    def __init__(self, id="feat_viz", every=50):
        self.id, self.every = id, every
    def handle(self, event, env):
        if event == "train_step_end" and env["step"] % self.every == 0:
            env["log"](f"[{self.id}] step={env['step']}")
    def set_params(self, **kw):
        self.every = kw.get("every", self.every)
"""


def hotcb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HOTCB
    result = subprocess.run([HOTCB, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def comparable(callbacks: dict[str, Any]) -> dict[str, Any]:
    """State that must survive the round trip (a file target moves to its captured copy)."""
    out = {}
    for cb_id, rec in callbacks.items():
        target = dict(rec["target"])
        if target["kind"] == "python_file":
            target["path"] = rec["sha256"]
        out[cb_id] = {"enabled": rec["enabled"], "params": rec["params"], "target": target}
    return out


@pytest.mark.skipif(HOTCB is None, reason="the hotcb console script is not installed")
def test_three_lines_round_trip(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples", app / "examples")
    shutil.copytree(REPO / "conf", app / "conf")
    (app / "viz.py").write_text(VIZ)
    train = subprocess.Popen(
        [
            sys.executable,
            "examples/train.py",
            "hotcb/callbacks=[timing,heartbeat]",
            "steps=100000",
            "step_sleep=0.002",
        ],
        cwd=app,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert train.stdout is not None
        line = wait_for(lambda: train.stdout.readline())  # type: ignore[union-attr]
        while not line.startswith("hotcb run dir: "):
            line = train.stdout.readline()
        run_dir = Path(line.split(": ", 1)[1].strip())
        assert (run_dir / ".hydra" / "config.yaml").exists()  # hotcb files sit beside .hydra/

        hotcb("cb", "set", "heartbeat", "every=5", cwd=tmp_path)
        hotcb(
            "cb",
            "load",
            "feat_viz",
            "--file",
            "viz.py",
            "--symbol",
            "FeatureViz",
            "--init",
            "every=50",
            cwd=app,
        )
        hotcb("cb", "disable", "timing", cwd=tmp_path)
        applied = wait_for(
            lambda: [
                e
                for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries
                if e.source == "external"
            ][2:]
        )
        set_step = next(
            e.step for e in read_ledger(run_dir / "hotcb.applied.jsonl").entries if e.op == "set"
        )
        assert all(e.decision == "applied" for e in applied)

        beats: list[int] = []
        while len([b for b in beats if b >= set_step]) < 4:
            text = train.stdout.readline()
            if text.startswith("[heartbeat] train_step_end step="):
                beats.append(int(text.rsplit("=", 1)[1]))
        # the set is applied at the start of step `set_step`, before that step's dispatch
        before = [b for b in beats if b < set_step]
        after = [b for b in beats if b >= set_step]
        assert all(b % 100 == 0 for b in before)
        assert all(b % 5 == 0 for b in after) and any(b % 100 for b in after)

        train.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert train.wait(30) == 130
    finally:
        if train.poll() is None:
            train.kill()
    final = json.loads((run_dir / "hotcb.state.json").read_text())
    assert final["closed"] is True

    exported = hotcb("export-config", cwd=app).stdout.splitlines()
    path = Path(exported[0].removeprefix("wrote "))
    name = path.stem
    assert path == app / "conf" / "hotcb" / "callbacks" / f"{name}.yaml"
    command = exported[1].removeprefix("next run: ")
    assert (
        command == f"python examples/train.py steps=100000 step_sleep=0.002 hotcb/callbacks={name}"
    )

    overrides = hotcb("export-config", "--format", "overrides", cwd=app).stdout.strip()
    assert "hotcb.callbacks.heartbeat.every=5" in overrides
    assert "+hotcb.callbacks.timing._enabled_=false" in overrides

    # the next run, from the export (a short one)
    args = [a for a in shlex.split(command)[1:] if not a.startswith(("steps=", "step_sleep="))]
    subprocess.run(
        [sys.executable, *args, "steps=3"], cwd=app, check=True, capture_output=True, timeout=120
    )
    runs = sorted((app / "outputs").glob("*/*"))
    second = runs[-1]
    assert second != run_dir
    config_loads = [
        e for e in read_ledger(second / "hotcb.applied.jsonl").entries if e.source == "config"
    ]
    assert {e.id for e in config_loads} == {"timing", "heartbeat", "feat_viz"}
    assert all(e.step == 0 and e.decision == "applied" for e in config_loads)
    state2 = json.loads((second / "hotcb.state.json").read_text())
    assert comparable(state2["callbacks"]) == comparable(final["callbacks"])
