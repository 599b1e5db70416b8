"""What a call runs, counted rather than timed: every Python function it enters, seen by
``sys.setprofile`` (a busy machine cannot make such a test flaky)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["python_calls"]


def python_calls(fn: Callable[..., Any], *args: Any) -> list[str]:
    """``module:qualname`` of each Python function ``fn(*args)`` enters, in order
    (``fn`` itself first).

    >>> def inner(): pass
    >>> def outer(): inner()
    >>> [c.split(":")[1] for c in python_calls(outer)]
    ['outer', 'inner']
    """
    seen: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            seen.append(f"{frame.f_globals.get('__name__')}:{code.co_qualname}")

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return seen
