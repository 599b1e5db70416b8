"""``hotcb.callbacks.anomaly_guard``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.anomaly_guard`."""

from hotcb.modules.cb.callbacks.anomaly_guard import AnomalyGuardCallback

__all__ = ["AnomalyGuardCallback"]
