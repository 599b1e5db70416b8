"""The runnable examples in the docstrings of the public modules stay runnable."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "hotcb.ops",
    "hotcb.stream",
    "hotcb.ledger",
    "hotcb.state",
    "hotcb.rundir",
    "hotcb.watchdog",
    "hotcb.files",
    "hotcb.runlock",
    "hotcb.desired",
    "hotcb.kernel",
    "hotcb.runs",
    "hotcb.cli",
    "hotcb.trust",
    "hotcb.hydra.hydrate",
    "hotcb.hydra.deltas",
    "hotcb.modules.cb.protocol",
    "hotcb.modules.cb.params",
    "hotcb.modules.cb.loader",
    "hotcb.modules.cb.static_target",
    "hotcb.interrupts",
    "hotcb.modules.cb.controller",
    "hotcb.modules.cb.module",
    "hotcb.modules.cb.callbacks.emit",
    "hotcb.modules.cb.callbacks.timing",
    "hotcb.modules.cb.callbacks.heartbeat",
    "hotcb.modules.cb.callbacks.scalars",
    "hotcb.modules.cb.callbacks.lr_monitor",
    "hotcb.modules.cb.callbacks.grad_stats",
    "hotcb.modules.cb.callbacks.tensor_stats",
    "hotcb.modules.cb.callbacks.system_stats",
    "hotcb.modules.cb.callbacks.anomaly_guard",
    "hotcb.modules.cb.callbacks.jsonl_logger",
    "hotcb.requests",
    "hotcb.adapters.session",
    "hotcb.distributed",
    "hotcb",
    "hotcb.intake",
    "hotcb.recorder",
    "hotcb.launch",
    "hotcb.modules.base",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert result.failed == 0
