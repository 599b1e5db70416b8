"""``hotcb.callbacks.timing``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.timing`."""

from hotcb.modules.cb.callbacks.timing import TimingCallback

__all__ = ["TimingCallback"]
