"""pytest setup for the whole checkout: the tests in tests/ and the doctests in hotcb/.

Everything collected here runs with its own live-run registry (HOTCB_HOME), never the
user's. Test helpers and fixtures live in tests/helpers.py and tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# Torch in every test process and child trains tiny models: one thread each keeps two
# parallel workers (and the two ranks of a DDP test) from fighting over two cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The adapters need their extra; without it their modules (which hold no doctests) cannot
# even be imported for doctest collection. Their tests skip on their own.
collect_ignore = [
    f"hotcb/adapters/{name}.py"
    for name, extra in (("lightning", "lightning"), ("hf", "transformers"))
    if importlib.util.find_spec(extra) is None
]


@pytest.fixture(autouse=True)
def _isolated_hotcb_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test (doctests too) out of the user's real registry of live runs."""
    monkeypatch.setenv("HOTCB_HOME", str(tmp_path_factory.mktemp("hotcb_home")))
    monkeypatch.delenv("HOTCB_RUN_DIR", raising=False)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable CPU, at least 2 (most tests wait on child
    processes) and at most 4 (the heavy tests start two processes of their own)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(2, min(4, usable or 2))
