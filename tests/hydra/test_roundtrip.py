"""The three lines of the README, as separate processes, on a copy of the example app:

python examples/train.py 'hotcb/callbacks=[timing,heartbeat]'
hotcb cb set heartbeat every=5          # another terminal, mid-run, no --dir
hotcb export-config                      # then start the next run from the export
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hotcb.ledger import LedgerEntry, read_ledger
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, run_state

pytestmark = pytest.mark.subprocess

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


def comparable(callbacks: dict[str, Any]) -> dict[str, Any]:
    """State that must survive the round trip (a file target moves to its captured copy)."""
    out = {}
    for cb_id, rec in callbacks.items():
        target = dict(rec["target"])
        if target["kind"] == "python_file":
            target["path"] = rec["sha256"]
        out[cb_id] = {"enabled": rec["enabled"], "params": rec["params"], "target": target}
    return out


def heartbeats(train: Child) -> list[int]:
    prefix = "[heartbeat] train_step_end step="
    return [int(x.removeprefix(prefix)) for x in list(train.lines) if x.startswith(prefix)]


@needs_hotcb
@pytest.mark.slow(10)
def test_three_lines_round_trip(tmp_path: Path, spawn: Callable[..., Child]) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples", app / "examples")
    shutil.copytree(REPO / "conf", app / "conf")
    (app / "viz.py").write_text(VIZ)
    # a long run (it ends by Ctrl-C); its output is read as it comes, so it never blocks
    train = spawn(
        [
            sys.executable,
            "examples/train.py",
            "hotcb/callbacks=[timing,heartbeat]",
            "steps=100000",
            "step_sleep=0.002",
        ],
        cwd=app,
        ctrl_c=True,
    )
    run_dir = Path(train.wait_line("hotcb run dir: ").split(": ", 1)[1].strip())
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

    def three_applied() -> list[LedgerEntry]:
        entries = external_entries(run_dir)
        return entries if len(entries) == 3 else []

    applied = train.wait_for(three_applied, what="the three commands in the ledger")
    assert [(e.op, e.decision) for e in applied] == [
        ("set", "applied"),
        ("load", "applied"),
        ("disable", "applied"),
    ]
    set_step = applied[0].step
    assert isinstance(set_step, int)

    train.wait_for(
        lambda: len([b for b in heartbeats(train) if b >= set_step]) >= 4,
        what="four heartbeats after the set",
    )
    # the set is applied at the start of step `set_step`, before that step's dispatch
    beats = heartbeats(train)
    before = [b for b in beats if b < set_step]
    after = [b for b in beats if b >= set_step]
    assert all(b % 100 == 0 for b in before)
    assert all(b % 5 == 0 for b in after) and any(b % 100 for b in after)

    train.interrupt()  # Ctrl-C: a clean stop
    train.finish(timeout=60, returncode=130)
    final = run_state(run_dir)
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
    assert comparable(run_state(second)["callbacks"]) == comparable(final["callbacks"])
