"""The benchmark scripts stay runnable and report what they promise (not timed tests)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(python: str, script: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` with ``--json``; its last line, parsed."""
    out = subprocess.run(
        [python, str(REPO / "benchmarks" / script), *args, "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_benchmark_reports_overhead_in_noop_calls_and_ratio(python: str) -> None:
    result = run_benchmark(
        python,
        "step_overhead.py",
        *("--steps", "20000", "--torch-steps", "20", "--repeats", "3"),
        timeout=120,
    )
    assert result["callbacks"] == ["heartbeat", "timing"]
    assert result["goal_noop_calls"] == 25
    # a no-op call costs tens of nanoseconds on any machine that runs the suite
    assert 0.002 < result["noop_call_us"] < 1.0
    # apply is at least its own call, one dispatch call and two callback calls, and
    # (a short, noisy run) not wildly above the goal of 25
    assert 4 < result["apply_in_noop_calls"] < 100
    # building the env dict costs something on top, and is reported apart
    assert result["apply_and_env_in_noop_calls"] > result["apply_in_noop_calls"]
    assert result["apply_us"] == pytest.approx(
        result["hot_us_per_step"] - result["env_us_per_step"], abs=1e-3
    )
    assert 0.2 < result["torch_ratio"] < 5


def test_ddp_benchmark_reports_both_sync_intervals(python: str) -> None:
    result = run_benchmark(
        python, "ddp_overhead.py", *("--steps", "20", "--repeats", "1"), timeout=240
    )
    assert result["world_size"] == 2 and result["bare_us_per_step"] > 0
    for key in ("sync_every_1", "sync_every_10"):
        assert result[f"{key}_ratio"] > 0
        assert result[f"{key}_in_apply_us_per_step"] > 0
