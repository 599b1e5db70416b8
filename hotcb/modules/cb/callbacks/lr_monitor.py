"""``lr_monitor``: learning rate and momentum of every param group.

Every ``every`` steps, for each param group ``i`` of ``env["optimizer"]``: ``lr/group<i>``
and ``momentum/group<i>`` (``momentum``, or ``betas[0]`` for Adam-style optimizers).

Hot parameters:
    every (int >= 1): report every this many steps.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    >>> cb = LrMonitorCallback(every=1)
    >>> cb.handle("train_step_end", {"step": 1, "optimizer": opt, "log": print})
    [lr_monitor] step=1 lr/group0=0.1 momentum/group0=0.9
"""

from __future__ import annotations

from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.scalars import log_scalars
from hotcb.modules.cb.params import check_known, positive_int

__all__ = ["LrMonitorCallback"]


class LrMonitorCallback:
    """Learning rate (and momentum) of every optimizer param group."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (HotParam("every", int, 50, "report every N steps", ge=1),)

    rank_zero_only = True
    events = ("train_step_end",)

    def __init__(self, id: str = "lr_monitor", every: int = 50) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.last: dict[str, float] = {}

    def set_params(self, **kwargs: Any) -> None:
        check_known("lr_monitor", kwargs, [p.name for p in self.hot_params])
        self.every = positive_int("every", kwargs.get("every", self.every))

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event != "train_step_end":
            return
        step = env.get("step", 0)
        if step % self.every:
            return
        optimizer = env.get("optimizer")
        if optimizer is None:
            return
        scalars: dict[str, float] = {}
        for i, group in enumerate(optimizer.param_groups):
            scalars[f"lr/group{i}"] = float(group["lr"])
            momentum = group.get("momentum")
            if momentum is None and group.get("betas") is not None:
                momentum = group["betas"][0]
            if momentum is not None:
                scalars[f"momentum/group{i}"] = float(momentum)
        self.last = scalars
        log_scalars(env, self.id, scalars, step)
