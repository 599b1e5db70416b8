"""Each built-in declares exactly the events its ``handle`` reacts to: the controller
calls it for those only, so a missing event would silently switch a feature off and an
extra one would cost a call per step for nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks.anomaly_guard import AnomalyGuardCallback
from hotcb.modules.cb.callbacks.grad_stats import GradStatsCallback
from hotcb.modules.cb.callbacks.heartbeat import HeartbeatCallback
from hotcb.modules.cb.callbacks.jsonl_logger import JsonlLoggerCallback
from hotcb.modules.cb.callbacks.lr_monitor import LrMonitorCallback
from hotcb.modules.cb.callbacks.tensor_stats import TensorStatsCallback
from hotcb.modules.cb.callbacks.timing import TimingCallback
from hotcb.modules.cb.protocol import declared_events

#: Every event a loop might emit: the documented ones and one of the user's own.
CANDIDATES = (
    "train_begin",
    "after_backward",
    "train_step_end",
    "val_end",
    "train_end",
    "epoch_end",
    "my_custom_event",
)


def _env(tmp_path: Path, step: int = 1) -> dict[str, Any]:
    """An env in which every built-in has something to do: a model with (non-finite)
    gradients, an optimizer, a non-finite loss, a run dir and a log sink."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    model(torch.ones(1, 2)).sum().backward()
    model[0].weight.grad[0, 0] = float("nan")  # type: ignore[index]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return {
        "step": step,
        "epoch": 0,
        "loss": float("nan"),
        "model": model,
        "optimizer": optimizer,
        "run_dir": str(tmp_path),
        "log": lambda line: None,
    }


def _timing(event: str, tmp_path: Path) -> bool:
    # between two step ends: an ignored event leaves one step time, train_begin (a gap)
    # none, another step end two
    cb = TimingCallback(every=10**9)
    env = _env(tmp_path)
    cb.handle("train_step_end", env)
    cb.handle(event, env)
    cb.handle("train_step_end", env)
    return len(cb.step_times()) != 1


def _heartbeat(cb: HeartbeatCallback) -> Callable[[str, Path], bool]:
    def probe(event: str, tmp_path: Path) -> bool:
        cb.handle(event, _env(tmp_path))
        beats, cb.beats = cb.beats, 0
        return beats > 0

    return probe


def _last(make: Callable[[], Any]) -> Callable[[str, Path], bool]:
    def probe(event: str, tmp_path: Path) -> bool:
        cb = make()
        cb.handle(event, _env(tmp_path))
        return bool(cb.last)

    return probe


def _anomaly_guard(event: str, tmp_path: Path) -> bool:
    cb = AnomalyGuardCallback()
    cb.handle(event, _env(tmp_path))
    return cb.anomalies > 0


def _jsonl_logger(event: str, tmp_path: Path) -> bool:
    cb = JsonlLoggerCallback(every=1)
    try:
        cb.handle(event, _env(tmp_path))
    finally:
        cb.close()
    return cb.written > 0


def _tensor_stats(event: str, tmp_path: Path) -> bool:
    # the event arms capture for the next step's forward, which the next step end reports
    cb = TensorStatsCallback(every=1)
    env = _env(tmp_path)
    try:
        cb.handle(event, env)
        env["model"](torch.ones(1, 2))
        cb.handle("train_step_end", {**env, "step": 2})
    finally:
        cb.close()
    return bool(cb.last)


def _system_stats() -> tuple[Any, Callable[[str, Path], bool]]:
    pytest.importorskip("psutil")
    from hotcb.modules.cb.callbacks.system_stats import SystemStatsCallback

    return SystemStatsCallback(), _last(lambda: SystemStatsCallback(every=1))


BUILT_INS: dict[str, Callable[[], tuple[Any, Callable[[str, Path], bool]]]] = {
    "timing": lambda: (TimingCallback(), _timing),
    "heartbeat": lambda: (HeartbeatCallback(), _heartbeat(HeartbeatCallback(every=1))),
    "heartbeat events=[val_end,my_custom_event]": lambda: (
        HeartbeatCallback(events=["val_end", "my_custom_event"]),
        _heartbeat(HeartbeatCallback(every=1, events=["val_end", "my_custom_event"])),
    ),
    "lr_monitor": lambda: (LrMonitorCallback(), _last(lambda: LrMonitorCallback(every=1))),
    "grad_stats": lambda: (GradStatsCallback(), _last(lambda: GradStatsCallback(every=1))),
    "anomaly_guard": lambda: (AnomalyGuardCallback(), _anomaly_guard),
    "jsonl_logger": lambda: (JsonlLoggerCallback(), _jsonl_logger),
    "tensor_stats": lambda: (TensorStatsCallback(), _tensor_stats),
    "system_stats": _system_stats,
}


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_a_built_in_declares_exactly_the_events_it_reacts_to(name: str, tmp_path: Path) -> None:
    instance, reacts = BUILT_INS[name]()
    reacting = {event for event in CANDIDATES if reacts(event, tmp_path)}
    assert reacting  # the probe sees the callback work
    assert declared_events(instance) == reacting


def test_heartbeat_events_stay_declared_through_a_hot_set() -> None:
    hb = HeartbeatCallback()
    hb.set_params(events=["val_end"])
    assert declared_events(hb) == {"val_end"}
    with pytest.raises(ValueError, match="events must name at least one event"):
        hb.set_params(events=[])
    assert declared_events(hb) == {"val_end"}
