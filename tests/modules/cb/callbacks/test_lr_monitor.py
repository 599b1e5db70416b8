from __future__ import annotations

from typing import Any

import pytest
import torch

from hotcb.modules.cb.callbacks.lr_monitor import LrMonitorCallback


def test_reports_every_param_group(loop: Any) -> None:
    loop.optimizer.add_param_group(
        {"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.5, "momentum": 0.1}
    )
    cb = LrMonitorCallback(every=2)
    loop.run(cb, 4)
    assert cb.last == {
        "lr/group0": 0.05,
        "momentum/group0": 0.9,
        "lr/group1": 0.5,
        "momentum/group1": 0.1,
    }
    assert [line.split()[1] for line in loop.lines] == ["step=2", "step=4"]


def test_adam_betas_and_a_live_lr_change(loop: Any) -> None:
    loop.optimizer = torch.optim.Adam(loop.model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    loop.env["optimizer"] = loop.optimizer
    cb = LrMonitorCallback(every=1)
    loop.run(cb, 1)
    for group in loop.optimizer.param_groups:
        group["lr"] = 3e-4
    loop.run(cb, 1)
    assert cb.last == {"lr/group0": 3e-4, "momentum/group0": 0.8}


def test_bad_every_is_rejected_and_nothing_changes() -> None:
    cb = LrMonitorCallback(every=5)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        cb.set_params(every=0)
    with pytest.raises(TypeError, match="has no hot parameter 'evry'"):
        cb.set_params(evry=1)
    assert cb.every == 5
