"""pytest setup for the whole checkout: the tests in tests/ and the doctests in hotcb/.

Everything collected here runs with its own live-run registry (HOTCB_HOME), never the
user's. Test helpers and fixtures live in tests/helpers.py and tests/conftest.py.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent

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


def pytest_configure(config: pytest.Config) -> None:
    """With PYTHONDONTWRITEBYTECODE set (as in many CI and container images) no process
    caches bytecode, so every training process, `hotcb` command and test worker the suite
    starts compiles hotcb from source again (a tenth of a `hotcb` command's start-up), and
    each worker rewrites and compiles every test module again. For this checkout, the suite
    caches it all the same: the test processes write their bytecode (pytest's rewritten test
    modules too), and the controller compiles the packages once before any worker starts;
    the processes they start read those files (they only don't write them)."""
    if not sys.dont_write_bytecode:
        return
    sys.dont_write_bytecode = False
    if not hasattr(config, "workerinput"):
        for package in ("hotcb", "hydra_plugins", "tests", "examples", "benchmarks"):
            compileall.compile_dir(ROOT / package, quiet=2)


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
