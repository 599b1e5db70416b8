from __future__ import annotations

from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks.anomaly_guard import AnomalyGuardCallback
from hotcb.requests import stop_requested


def poison_at(step: int) -> Any:
    def poison(lp: Any) -> None:
        if lp.step == step:
            lp.model[2].weight.grad[0, 3] = float("nan")

    return poison


def test_names_the_layer_of_a_non_finite_gradient(loop: Any) -> None:
    loop.before_step = poison_at(3)
    cb = AnomalyGuardCallback(action="log")
    loop.run(cb, 3)
    assert cb.first == {
        "step": 3,
        "kind": "non-finite gradient",
        "layer": "2.weight",
        "action": "log",
    }
    assert loop.lines[0] == "[anomaly_guard] step=3 non-finite gradient in 2.weight; action=log"


def test_skip_zeroes_the_grads_so_the_update_is_harmless(loop: Any) -> None:
    loop.run(AnomalyGuardCallback(), 2)
    loop.before_step = poison_at(3)
    before = [p.detach().clone() for p in loop.model.parameters()]
    loop.optimizer = torch.optim.SGD(loop.model.parameters(), lr=0.05)  # no momentum carry-over
    loop.env["optimizer"] = loop.optimizer
    cb = AnomalyGuardCallback(action="skip")
    loop.run(cb, 1)
    after = list(loop.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert all(torch.isfinite(p).all() for p in after)


def test_stop_requests_a_stop(loop: Any) -> None:
    loop.before_step = poison_at(2)
    cb = AnomalyGuardCallback(action="stop")
    loop.run(cb, 2)
    assert stop_requested(loop.env) == "non-finite gradient in 2.weight at step 2 (anomaly_guard)"


def test_loss_spike_relative_to_the_window(log_lines: Any) -> None:
    cb = AnomalyGuardCallback(spike_factor=3.0, window=5)
    for step, loss in enumerate([1.0, 1.1, 0.9, 1.0, 1.0, 2.5, 5.0], start=1):
        cb.handle("train_step_end", {"step": step, "loss": torch.tensor(loss), "log": log_lines})
    assert cb.anomalies == 1 and cb.first is not None and cb.first["step"] == 7
    assert "loss spike (5 > 3 x mean 1.3)" in log_lines.lines[0]


def test_bad_action_changes_nothing() -> None:
    cb = AnomalyGuardCallback()
    with pytest.raises(ValueError, match="action must be one of log, skip, stop"):
        cb.set_params(action="panic", window=3)
    assert (cb.action, cb.window) == ("log", 50)
