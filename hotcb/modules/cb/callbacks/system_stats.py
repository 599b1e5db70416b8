"""``system_stats``: process CPU and memory, system memory, CUDA memory.

Every ``every`` steps: ``cpu_percent`` and ``rss_mib`` of the training process,
``sys_mem_used_percent`` and ``sys_mem_available_mib``, and with ``gpu`` (the default),
when the run uses torch and CUDA is available, ``cuda_allocated_mib`` /
``cuda_reserved_mib`` of the current device and ``cuda_utilization_percent`` (when
``torch.cuda.utilization`` can read it: it needs pynvml). Without a GPU it says so once:
``[system_stats] step=N no GPU (...)``. Needs psutil (``pip install hydra-hotcb[system]``).

Hot parameters:
    every (int >= 1), gpu (bool: report the GPU; the reference project's parameter).

Example:
    >>> cb = SystemStatsCallback(every=1)
    >>> cb.handle("train_step_end", {"step": 1, "log": lambda m: None})
    >>> cb.last["rss_mib"] > 0
    True
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.callbacks.scalars import log_scalars
from hotcb.modules.cb.params import boolean, check_known, positive_int

__all__ = ["SystemStatsCallback"]


class SystemStatsCallback:
    """Process and system resource usage, every N steps."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 100, "report every N steps", ge=1),
        HotParam("gpu", bool, True, "also report GPU memory and utilisation (says no GPU once)"),
    )

    rank_zero_only = True
    events = ("train_step_end",)

    def __init__(self, id: str = "system_stats", every: int = 100, gpu: bool = True) -> None:
        try:
            import psutil
        except ImportError:
            raise ImportError(
                "system_stats needs psutil: pip install 'hydra-hotcb[system]'"
            ) from None
        self.id = id
        self.every = positive_int("every", every)
        self.gpu = boolean("gpu", gpu)
        #: why there are no GPU numbers (None: there are, or gpu is off)
        self.no_gpu: str | None = None
        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the next call measures since now
        self.last: dict[str, float] = {}

    def set_params(self, **kwargs: Any) -> None:
        check_known("system_stats", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        gpu = boolean("gpu", kwargs.get("gpu", self.gpu))
        if gpu != self.gpu:
            self.no_gpu = None  # say it again when asked again
        self.every, self.gpu = every, gpu

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
        no_gpu = self._gpu_scalars(scalars) if self.gpu else None
        if no_gpu is not None and no_gpu != self.no_gpu:
            emit(env, f"[{self.id}] step={step} no GPU ({no_gpu})")
        self.no_gpu = no_gpu
        self.last = scalars
        log_scalars(env, self.id, scalars, step)

    @staticmethod
    def _gpu_scalars(scalars: dict[str, float]) -> str | None:
        """Add the current CUDA device's numbers to ``scalars``; else say why there are none."""
        torch = sys.modules.get("torch")  # only if the run already uses torch
        if torch is None:
            return "the run does not use torch"
        if not torch.cuda.is_available():
            return "CUDA is not available"
        scalars["cuda_allocated_mib"] = torch.cuda.memory_allocated() / 2**20
        scalars["cuda_reserved_mib"] = torch.cuda.memory_reserved() / 2**20
        with contextlib.suppress(Exception):  # it needs pynvml; memory is reported anyway
            scalars["cuda_utilization_percent"] = float(torch.cuda.utilization())
        return None
