from __future__ import annotations

import os
from typing import Any

import pytest

psutil = pytest.importorskip("psutil")

from hotcb.modules.cb.callbacks.system_stats import SystemStatsCallback  # noqa: E402


def test_reports_process_and_system_memory(loop: Any) -> None:
    cb = SystemStatsCallback(every=2)
    loop.run(cb, 2)
    rss = psutil.Process(os.getpid()).memory_info().rss / 2**20
    assert cb.last["rss_mib"] == pytest.approx(rss, rel=0.2)
    assert 0 < cb.last["sys_mem_used_percent"] < 100
    assert cb.last["cpu_percent"] >= 0
    assert ("cuda_allocated_mib" in cb.last) == __import__("torch").cuda.is_available()
    assert loop.lines[-1].startswith("[system_stats] step=2 cpu_percent=")
