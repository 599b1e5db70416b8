"""``hotcb.callbacks.grad_stats``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.grad_stats`."""

from hotcb.modules.cb.callbacks.grad_stats import GradStatsCallback

__all__ = ["GradStatsCallback"]
