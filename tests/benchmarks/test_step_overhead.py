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


@pytest.mark.slow(3)
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
    # the opt and loss modules, idle, add (about) nothing: before they were left out of the
    # dispatch they added about 8 no-op calls
    assert result["optloss_apply_us"] == pytest.approx(
        result["optloss_hot_us_per_step"] - result["env_optloss_us_per_step"], abs=1e-3
    )
    assert result["optloss_extra_in_noop_calls"] < 5


@pytest.mark.slow(6)
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


@pytest.mark.slow(10)
def test_lightning_benchmark_compares_like_with_like(python: str) -> None:
    pytest.importorskip("lightning.pytorch")
    args = ("--batches", "6", "--epochs", "1", "--repeats", "1")
    out = subprocess.run(
        [python, str(REPO / "benchmarks" / "lightning_overhead.py"), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=240,
    ).stdout
    result = json.loads(out[out.index("{") :])
    setup = result["setup"]
    assert (setup["batches_per_epoch"], setup["epochs_per_run"], setup["rounds"]) == (6, 1, 1)
    assert "timing + heartbeat" in setup["loaded"]  # it says what "with" loads
    # the controller's hooks are measured beside a no-op callback's (the floor)
    for key in ("per_hook_us_noop_callback", "per_hook_us_idle", "per_hook_us_timing_heartbeat"):
        assert "on_train_batch_end" in result[key], key
    floor, idle = result["per_hook_us_noop_callback"], result["per_hook_us_idle"]
    above = max(us - floor[hook] for hook, us in idle.items())
    assert result["max_idle_hook_us_above_noop"] == pytest.approx(above, abs=0.011)
    # every configuration ran, each epoch timed; the ratios are of those medians
    configs = {"none", "noop", "idle", "loaded"}
    assert set(result["epoch_cpu_seconds_median"]) == configs
    median = result["epoch_cpu_seconds_median"]
    for config, (low, high) in result["epoch_cpu_seconds_spread"].items():
        assert 0 < low <= median[config] <= high, config
    # of the unrounded medians: a few-millisecond epoch rounded to 10 µs moves it ~0.5 %
    ratio = median["idle"] / median["none"]
    assert result["epoch_ratio"]["idle"] == pytest.approx(ratio, rel=2e-2)
    assert set(result["epoch_ratio_vs_noop"]) == {"idle", "loaded"}
