"""Shared fixtures: every test gets its own live-run registry (HOTCB_HOME)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_hotcb_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tests out of the user's real registry of live runs."""
    monkeypatch.setenv("HOTCB_HOME", str(tmp_path_factory.mktemp("hotcb_home")))
    monkeypatch.delenv("HOTCB_RUN_DIR", raising=False)


@pytest.fixture
def python() -> str:
    return sys.executable


class Lines:
    """A ``log`` sink that keeps what callbacks print."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(message)

    def matching(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]


@pytest.fixture
def log_lines() -> Lines:
    return Lines()


@pytest.fixture
def kernel_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build kernels in tmp run dirs (poll every apply) and close them after the test."""
    from hotcb.kernel import HotKernel

    made: list[HotKernel] = []

    def make(run_dir: Path | None = None, **kwargs: Any) -> HotKernel:
        kwargs.setdefault("poll_interval", 0)
        kernel = HotKernel(run_dir=run_dir or tmp_path / "run", **kwargs)
        made.append(kernel)
        return kernel

    yield make
    for kernel in made:
        kernel.close()
