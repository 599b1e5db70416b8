"""``hotcb.callbacks.heartbeat``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.heartbeat`."""

from hotcb.modules.cb.callbacks.heartbeat import HeartbeatCallback

__all__ = ["HeartbeatCallback"]
