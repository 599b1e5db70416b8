"""The benchmark scripts stay runnable and report what they promise (not timed tests):
each figure is in a plausible range and agrees with the figures it is computed from."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.subprocess


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


@pytest.mark.slow(7)
def test_benchmark_reports_overhead_and_ratio(python: str) -> None:
    result = run_benchmark(
        python,
        "step_overhead.py",
        *("--steps", "20000", "--torch-steps", "200", "--repeats", "3"),
        timeout=120,
    )
    assert result["callbacks"] == ["heartbeat", "timing"]
    bare, hot = result["idle_bare_us_per_step"], result["idle_hot_us_per_step"]
    overhead, call = result["idle_overhead_us_per_step"], result["noop_call_us"]
    assert overhead == pytest.approx(hot - bare, abs=0.002)
    # a Python call costs tens of nanoseconds; apply with two callbacks costs several calls
    assert 0.005 < call < 1.0
    assert 2 < result["idle_overhead_in_noop_calls"] < 1000
    assert result["idle_overhead_in_noop_calls"] == pytest.approx(overhead / call, rel=0.01)
    # a tiny torch step costs tens of microseconds; hotcb's idle apply adds a few percent
    assert 5 < result["torch_bare_us_per_step"] < 10_000
    assert result["torch_ratio"] == pytest.approx(
        result["torch_hot_us_per_step"] / result["torch_bare_us_per_step"], rel=0.01
    )
    assert 0.5 < result["torch_ratio"] < 2


@pytest.mark.slow(13)
def test_ddp_benchmark_reports_both_sync_intervals(python: str) -> None:
    result = run_benchmark(
        python, "ddp_overhead.py", *("--steps", "20", "--repeats", "1"), timeout=240
    )
    assert result["world_size"] == 2 and result["steps"] == 20
    bare = result["bare_us_per_step"]
    assert 10 < bare < 1_000_000  # a gloo all_reduce of a Linear(64, 64): a few ms
    for key in ("sync_every_1", "sync_every_10"):
        per_step, in_apply = result[f"{key}_us_per_step"], result[f"{key}_in_apply_us_per_step"]
        assert result[f"{key}_ratio"] == pytest.approx(per_step / bare, rel=0.01)
        assert result[f"{key}_overhead_us_per_step"] == pytest.approx(per_step - bare, abs=0.2)
        assert 0 < in_apply < per_step  # time inside apply is part of the step
    # a sync point is an all_reduce: syncing every step costs more than every 10th step
    assert (
        result["sync_every_1_in_apply_us_per_step"] > result["sync_every_10_in_apply_us_per_step"]
    )
