"""``hotcb.callbacks.tensor_stats``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.tensor_stats`."""

from hotcb.modules.cb.callbacks.tensor_stats import TensorStatsCallback

__all__ = ["TensorStatsCallback"]
