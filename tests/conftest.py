"""Shared fixtures (the registry isolation every test gets is in the top-level conftest.py),
and the order tests start in: the slowest first, so that under pytest-xdist the run does
not end waiting for one long test that started last."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TRAINER, Child


def expected_seconds(item: pytest.Item) -> float:
    """How long ``item`` is marked to take: ``@pytest.mark.slow(seconds)``, else 0."""
    mark = item.get_closest_marker("slow")
    if mark is None:
        return 0.0
    return float(mark.args[0]) if mark.args else 10.0


def xdist_group(item: pytest.Item) -> str:
    """The ``@pytest.mark.xdist_group(name)`` of ``item``, else ""."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return ""
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", ""))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first (a stable sort: the others keep their order). With ``--dist
    loadgroup`` each idle worker takes the next test in this order. The tests of one
    ``xdist_group`` (they share a module-scoped run) stay together, at the place of their
    summed time: one worker runs them one after the other, and so does ``-n 0``, whose
    module fixture would otherwise run again for a member sorted apart."""
    group_seconds: dict[str, float] = {}
    for item in items:
        if group := xdist_group(item):
            group_seconds[group] = group_seconds.get(group, 0.0) + expected_seconds(item)

    def order(item: pytest.Item) -> tuple[float, str]:
        group = xdist_group(item)
        return (group_seconds[group] if group else expected_seconds(item), group)

    items.sort(key=order, reverse=True)


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


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    """``spawn(argv, cwd=..., env=..., ctrl_c=...)`` starts a :class:`~tests.helpers.Child`;
    whatever still runs when the test ends is killed with everything it started."""
    children: list[Child] = []

    def start(argv: list[str], **kwargs: Any) -> Child:
        child = Child(argv, **kwargs)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


@pytest.fixture
def trainer(spawn: Callable[..., Child]) -> Callable[..., Child]:
    """``trainer(run_dir, step=0, heartbeat=0, echo=False)`` starts the
    :data:`~tests.helpers.TRAINER` process (``child.first_line()`` is ``fresh`` or
    ``resumed``); it stops on Ctrl-C (``child.interrupt()``)."""

    def start(run_dir: Path, step: int = 0, heartbeat: int = 0, echo: bool = False) -> Child:
        argv = [sys.executable, "-c", TRAINER, str(run_dir), str(step), str(heartbeat)]
        return spawn([*argv, "echo" if echo else "quiet"], ctrl_c=True)

    return start
