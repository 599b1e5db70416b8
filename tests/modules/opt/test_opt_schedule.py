"""Setting lr under each LR scheduler torch ships: the schedule continues from the new
value (every later lr is the unchanged twin's times new/old), instead of being overwritten
at the next ``scheduler.step()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from hotcb.modules.opt import OptModule
from hotcb.ops import Op

Sched = Callable[[torch.optim.Optimizer], Any]


def two_groups() -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1, momentum=0.9)


def lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]


def drive(
    make: Sched, change: dict[str, Any], *, at: int = 7, steps: int = 40
) -> list[tuple[list[float], list[float]]]:
    """Step a twin and a changed copy side by side; the change lands after step ``at``.
    Returns (twin lrs, changed lrs) for every step after the change."""
    twin_opt, opt = two_groups(), two_groups()
    twin, sched = make(twin_opt), make(opt)
    module = OptModule()
    out = []
    for step in range(1, steps + 1):
        for o in (twin_opt, opt):
            o.step()
        for s in (twin, sched):
            s.step()
        if step == at:
            result = module.apply_op(
                Op("set", "optimizer", module="opt", params=change),
                {"step": step, "optimizer": opt, "scheduler": sched},
            )
            assert result.decision == "applied", result.error
        elif step > at:
            out.append((lrs(twin_opt), lrs(opt)))
    return out


SCHEDULERS: dict[str, Sched] = {
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1 / (1 + t)),
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
        o, T_max=15, eta_min=0.001
    ),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=[1.0, 0.5], total_steps=60
    ),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_the_schedule_continues_scaled_from_the_new_lr(name: str) -> None:
    # lr_scale=0.5 halves every group; the rest of the run is the twin's curve halved,
    # past StepLR's boundaries, the cosine's restart and OneCycleLR's peak
    for twin, changed in drive(SCHEDULERS[name], {"lr_scale": 0.5}):
        assert changed == pytest.approx([0.5 * x for x in twin], rel=1e-9), name


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_setting_lr_for_one_group_rescales_that_groups_schedule_only(name: str) -> None:
    at = 7
    twin_opt = two_groups()
    twin = SCHEDULERS[name](twin_opt)
    for _ in range(at):
        twin_opt.step()
        twin.step()
    factor = 0.002 / lrs(twin_opt)[1]
    after = drive(SCHEDULERS[name], {"group": 1, "lr": 0.002}, at=at)
    for twin_lrs, changed in after:
        assert changed[0] == pytest.approx(twin_lrs[0], rel=1e-9)  # group 0 untouched
        if name == "CosineAnnealingLR":  # eta_min is one floor for both groups: kept
            continue
        assert changed[1] == pytest.approx(twin_lrs[1] * factor, rel=1e-9)


def test_reduce_on_plateau_reduces_from_the_new_lr() -> None:
    opt = two_groups()
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=1)
    module = OptModule()
    env = {"step": 1, "optimizer": opt, "scheduler": plateau}
    result = module.apply_op(Op("set", "optimizer", module="opt", params={"lr": 0.3}), env)
    assert result.decision == "applied"
    for _ in range(4):  # no improvement: it reduces
        plateau.step(1.0)
    assert lrs(opt) == pytest.approx([0.03, 0.03])
    assert plateau.get_last_lr() == pytest.approx([0.03, 0.03])
