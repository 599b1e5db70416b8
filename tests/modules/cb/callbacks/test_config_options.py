"""Every built-in is a hotcb/callbacks option that loads and reports in the example app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hotcb.ledger import read_ledger
from tests.helpers import REPO

pytestmark = pytest.mark.subprocess

ALL = [
    "timing",
    "heartbeat",
    "jsonl_logger",
    "grad_stats",
    "tensor_stats",
    "system_stats",
    "anomaly_guard",
    "lr_monitor",
]


@pytest.mark.slow(4)
def test_all_builtins_from_config_in_a_real_run(tmp_path: Path) -> None:
    options = sorted(
        p.stem for p in (REPO / "hotcb" / "conf" / "hotcb" / "callbacks").glob("*.yaml")
    )
    assert options == sorted(ALL)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    every = [
        f"hotcb.callbacks.{cb}.every=10"
        for cb in ALL
        if cb not in ("anomaly_guard", "jsonl_logger")
    ]
    out = subprocess.run(
        [
            sys.executable,
            "examples/train.py",
            f"hotcb/callbacks=[{','.join(ALL)}]",
            "steps=20",
            "val_every=10",
            "hotcb.callbacks.tensor_stats.pattern='2'",
            "hotcb.callbacks.jsonl_logger.every=5",
            *every,
            "hydra.run.dir=run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loads = [
        e for e in read_ledger(tmp_path / "run" / "hotcb.applied.jsonl").entries if e.op == "load"
    ]
    assert sorted(e.id for e in loads) == sorted(ALL) and {e.decision for e in loads} == {"applied"}
    for prefix in (
        "[timing] step=10",
        "[heartbeat]",
        "[grad_stats] step=10",
        "[tensor_stats] step=10 2",
        "[system_stats] step=10",
        "[lr_monitor] step=10 lr/group0=0.01",
    ):
        assert prefix in out.stdout, prefix
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["event"] == "train_step_end"] == [5, 10, 15, 20]
    assert [r["val_loss"] for r in rows if r["event"] == "val_end"] != []
    state = json.loads((tmp_path / "run" / "hotcb.state.json").read_text())
    assert all(rec["error"] is None and rec["enabled"] for rec in state["callbacks"].values())
