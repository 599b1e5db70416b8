"""Where built-in callbacks send their output.

``env["log"]`` (a ``print``-like callable the training loop passes) if present, else the
``hotcb`` logger at INFO.

Example:
    >>> emit({"log": print}, "[timing] step=10 mean=1.0ms")
    [timing] step=10 mean=1.0ms
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["emit"]

_log = logging.getLogger("hotcb.callbacks")


def emit(env: dict[str, Any], message: str) -> None:
    """Send one line of callback output to the run's log."""
    sink = env.get("log")
    if callable(sink):
        sink(message)
    else:
        _log.info(message)
