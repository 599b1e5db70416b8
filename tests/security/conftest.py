"""Fixtures of the security tests (helpers: :mod:`tests.security.harness`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.harness import FinishedRun, make_finished_run


@pytest.fixture
def finished_run(tmp_path: Path) -> FinishedRun:
    """A Hydra-like run dir that ended with ``heartbeat`` loaded (``every=7``)."""
    return make_finished_run(tmp_path)
