"""``system_stats``: process CPU and memory, system memory, CUDA memory.

Every ``every`` steps: ``cpu_percent`` and ``rss_mib`` of the training process,
``sys_mem_used_percent`` and ``sys_mem_available_mib``, and, when a GPU is present,
``cuda_allocated_mib`` / ``cuda_reserved_mib`` of the current device. Needs psutil
(``pip install hydra-hotcb[system]``).

Hot parameters:
    every (int >= 1).

Example:
    >>> cb = SystemStatsCallback(every=1)
    >>> cb.handle("train_step_end", {"step": 1, "log": lambda m: None})
    >>> cb.last["rss_mib"] > 0
    True
"""

from __future__ import annotations

import sys
from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.scalars import log_scalars
from hotcb.modules.cb.params import check_known, positive_int

__all__ = ["SystemStatsCallback"]


class SystemStatsCallback:
    """Process and system resource usage, every N steps."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (HotParam("every", int, 100, "report every N steps", ge=1),)

    rank_zero_only = True
    events = ("train_step_end",)

    def __init__(self, id: str = "system_stats", every: int = 100) -> None:
        try:
            import psutil
        except ImportError:
            raise ImportError(
                "system_stats needs psutil: pip install 'hydra-hotcb[system]'"
            ) from None
        self.id = id
        self.every = positive_int("every", every)
        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the next call measures since now
        self.last: dict[str, float] = {}

    def set_params(self, **kwargs: Any) -> None:
        check_known("system_stats", kwargs, [p.name for p in self.hot_params])
        self.every = positive_int("every", kwargs.get("every", self.every))

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event != "train_step_end":
            return
        step = env.get("step", 0)
        if step % self.every:
            return
        vm = self._psutil.virtual_memory()
        scalars = {
            "cpu_percent": float(self._process.cpu_percent(None)),
            "rss_mib": self._process.memory_info().rss / 2**20,
            "sys_mem_used_percent": float(vm.percent),
            "sys_mem_available_mib": vm.available / 2**20,
        }
        torch = sys.modules.get("torch")  # only if the run already uses torch
        if torch is not None and torch.cuda.is_available():
            scalars["cuda_allocated_mib"] = torch.cuda.memory_allocated() / 2**20
            scalars["cuda_reserved_mib"] = torch.cuda.memory_reserved() / 2**20
        self.last = scalars
        log_scalars(env, self.id, scalars, step)
