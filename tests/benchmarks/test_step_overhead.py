"""The benchmark script stays runnable and reports what it promises (not a timed test)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_reports_overhead_and_ratio(python: str) -> None:
    out = subprocess.run(
        [
            python,
            str(REPO / "benchmarks" / "step_overhead.py"),
            "--steps",
            "2000",
            "--torch-steps",
            "20",
            "--repeats",
            "1",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["callbacks"] == ["heartbeat", "timing"]
    assert result["idle_hot_us_per_step"] > result["idle_bare_us_per_step"] > 0
    assert result["torch_ratio"] > 0


def test_ddp_benchmark_reports_both_sync_intervals(python: str) -> None:
    out = subprocess.run(
        [
            python,
            str(REPO / "benchmarks" / "ddp_overhead.py"),
            "--steps",
            "20",
            "--repeats",
            "1",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["world_size"] == 2 and result["bare_us_per_step"] > 0
    for key in ("sync_every_1", "sync_every_10"):
        assert result[f"{key}_ratio"] > 0
        assert result[f"{key}_in_apply_us_per_step"] > 0
