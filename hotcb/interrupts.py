"""Tell the user's Ctrl-C apart from a ``KeyboardInterrupt`` that callback code raises.

hotcb catches everything a callback raises, ``SystemExit`` and ``KeyboardInterrupt``
included, so that no callback ends a training run; the user's own Ctrl-C must still stop
it. While a controller is live, started in the main thread, and SIGINT's handler is
Python's default, :func:`install` puts a handler in its place that behaves exactly like
the default (it raises ``KeyboardInterrupt``) but marks the exception it raises. An
``except BaseException`` around user code then asks :func:`is_user_interrupt` and
re-raises only a real Ctrl-C. Nothing of this runs on the hot path: only ``except``
branches call it.

Example (in the main thread, with Python's default SIGINT handler):
    >>> import signal
    >>> install()
    True
    >>> try:
    ...     signal.raise_signal(signal.SIGINT)  # what Ctrl-C does
    ... except KeyboardInterrupt as exc:
    ...     is_user_interrupt(exc)
    True
    >>> is_user_interrupt(KeyboardInterrupt()), is_user_interrupt(SystemExit(0))
    (False, False)
    >>> release()
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["install", "is_user_interrupt", "release"]

_MARK = "__hotcb_sigint__"
_users = 0


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Python's default SIGINT behaviour, with the exception marked as a real Ctrl-C.
    (This frame is the last line of a Ctrl-C traceback while hotcb runs.)"""
    exc = KeyboardInterrupt()
    setattr(exc, _MARK, True)
    raise exc


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> bool:
    """Mark real SIGINTs from now on, if SIGINT's handler is Python's default (or already
    ours) and this is the main thread. Returns whether it is installed; pair each True
    with a :func:`release`."""
    global _users
    if not _main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    elif current is not _on_sigint:
        return False  # someone else handles SIGINT: leave it alone
    _users += 1
    return True


def release() -> None:
    """Undo one :func:`install`; the last one puts Python's default handler back."""
    global _users
    _users = max(0, _users - 1)
    if _users == 0 and _main_thread() and signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def is_user_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's Ctrl-C (to re-raise) rather than an exception that
    callback code raised (to contain like any error).

    With the marking handler in place: a ``KeyboardInterrupt`` raised by a real SIGINT,
    or raised while one was being handled. Without it hotcb cannot tell, so every
    ``KeyboardInterrupt`` counts as the user's when a SIGINT handler could have raised it.
    """
    if not isinstance(exc, KeyboardInterrupt):
        return False
    handler = signal.getsignal(signal.SIGINT)
    if handler is not _on_sigint:
        return callable(handler) and _main_thread()
    seen: BaseException | None = exc
    for _ in range(100):  # the exception chain, bounded against cycles
        if seen is None:
            return False
        if getattr(seen, _MARK, False) is True:
            return True
        seen = seen.__context__
    return False
