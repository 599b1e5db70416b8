"""Every built-in declares its hot parameters, and the declaration is what the class does:
its defaults are the instance's, set_params takes exactly the declared names, and the
CLI's list of built-ins is the Hydra option files."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from hotcb.cli.describe import builtins, describe_builtin
from hotcb.hotparams import declared_params

BUILTINS = builtins()


def _plain(value: Any) -> Any:
    return sorted(value) if isinstance(value, (set, frozenset)) else value


def _instance(cb_id: str) -> Any:
    target = BUILTINS[cb_id]
    if cb_id == "system_stats":
        pytest.importorskip("psutil")
    return getattr(importlib.import_module(target["path"]), target["symbol"])()


def test_the_builtins_are_the_option_files() -> None:
    assert sorted(BUILTINS) == [
        "anomaly_guard",
        "grad_stats",
        "heartbeat",
        "jsonl_logger",
        "lr_monitor",
        "system_stats",
        "tensor_stats",
        "timing",
    ]


@pytest.mark.parametrize("cb_id", sorted(BUILTINS))
def test_each_builtin_declares_what_it_does(cb_id: str) -> None:
    cb = _instance(cb_id)
    declared = declared_params(type(cb))
    assert declared, f"{cb_id} declares no hot_params"
    for param in declared:
        assert param.help, f"{cb_id}.{param.name} has no help"
        assert _plain(getattr(cb, param.name)) == param.default, (cb_id, param.name)
        assert param.check(param.default) == param.default
    cb.set_params(**{p.name: p.default for p in declared})  # the defaults are accepted
    with pytest.raises((TypeError, ValueError)):
        cb.set_params(not_declared=1)  # and nothing else
    described = describe_builtin(cb_id)
    assert [p["name"] for p in described["hot_params"]] == [p.name for p in declared]
    assert described["doc"] and described["target"] == BUILTINS[cb_id]
