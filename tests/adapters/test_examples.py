"""The adapter examples stay runnable: each trains a few steps and leaves a ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hotcb.ledger import read_ledger
from tests.helpers import REPO


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("script", "extra", "expected_ids"),
    [
        pytest.param(
            "lightning_train.py",
            "lightning.pytorch",
            {"heartbeat", "lr_monitor"},
            marks=pytest.mark.slow(7),
        ),
        pytest.param(
            "hf_train.py",
            "transformers",
            {"heartbeat", "anomaly_guard"},
            marks=pytest.mark.slow(7),
        ),
    ],
)
def test_example_trains_and_records_its_callbacks(
    tmp_path: Path, script: str, extra: str, expected_ids: set[str]
) -> None:
    pytest.importorskip(extra)
    run_dir = tmp_path / "hot"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / script),
            "--steps",
            "100",
            "--run-dir",
            str(run_dir),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[heartbeat] train_step_end step=100" in proc.stdout
    # the same "applied" lines as the Hydra app, through the hotcb logger
    assert "hotcb: load heartbeat applied" in proc.stdout
    entries = read_ledger(run_dir / "hotcb.applied.jsonl").entries
    assert {
        e.id for e in entries if e.source == "config" and e.decision == "applied"
    } == expected_ids
