"""``hotcb.callbacks.jsonl_logger``: the reference project's path of :mod:`hotcb.modules.cb.callbacks.jsonl_logger`."""

from hotcb.modules.cb.callbacks.jsonl_logger import JSONLLoggerCallback

__all__ = ["JSONLLoggerCallback"]
