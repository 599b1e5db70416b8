from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

psutil = pytest.importorskip("psutil")

from hotcb.modules.cb.callbacks.system_stats import SystemStatsCallback  # noqa: E402


def meminfo_mib() -> dict[str, float]:
    """/proc/meminfo in MiB, read without psutil."""
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) / 1024
    return out


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="reads /proc (Linux)")
def test_reports_process_and_system_memory(loop: Any) -> None:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    cb = SystemStatsCallback(every=2)  # starts measuring this process's CPU here
    busy(0.3)
    loop.run(cb, 2)
    cpu_percent = 100 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    mem = meminfo_mib()
    rss = psutil.Process(os.getpid()).memory_info().rss / 2**20
    # the CPU this process burnt since the callback started, as `top` would show it
    assert cb.last["cpu_percent"] == pytest.approx(cpu_percent, abs=10)
    assert cb.last["cpu_percent"] > 5
    assert cb.last["rss_mib"] == pytest.approx(rss, rel=0.2)
    used = 100 * (mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"]
    assert cb.last["sys_mem_used_percent"] == pytest.approx(used, abs=2)
    assert cb.last["sys_mem_available_mib"] == pytest.approx(mem["MemAvailable"], rel=0.05)
    assert ("cuda_allocated_mib" in cb.last) == __import__("torch").cuda.is_available()
    assert loop.lines[-1].startswith("[system_stats] step=2 cpu_percent=")
