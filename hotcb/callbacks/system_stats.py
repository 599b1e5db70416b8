"""``hotcb.callbacks.system_stats``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.system_stats`."""

from hotcb.modules.cb.callbacks.system_stats import SystemStatsCallback

__all__ = ["SystemStatsCallback"]
