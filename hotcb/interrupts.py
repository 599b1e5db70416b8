"""Tell the user's Ctrl-C apart from a ``KeyboardInterrupt`` that callback code raises.

hotcb catches everything a callback raises, ``SystemExit`` and ``KeyboardInterrupt``
included, so that no callback ends a training run; the user's own Ctrl-C must still stop
it. While a controller is live, started in the main thread, and SIGINT's handler is
Python's default, :func:`install` puts a handler in its place that behaves exactly like
the default (it raises ``KeyboardInterrupt``) but marks the exception it raises. An
``except BaseException`` around user code then asks :func:`is_user_interrupt` and
re-raises only a real Ctrl-C. Nothing of this runs on the hot path: only ``except``
branches call it.

SIGTERM (what SLURM preemption, ``kill`` and job schedulers send) closes the run as
cleanly as Ctrl-C: where hotcb installs its SIGINT handler it also handles SIGTERM, unless
SIGTERM is ignored. The handler first calls a Python handler that was there before (a
framework's own), then raises a marked ``SystemExit(143)`` (128 + SIGTERM, the exit status
shells report for it): the loop unwinds, the kernel's close (or its exit hook) writes the
final state, closes the callbacks, flushes the ledger and leaves the registry, and the
process exits 143. Like Ctrl-C, it is never contained as a callback's error.

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
from typing import Any

__all__ = ["TERMINATED_STATUS", "install", "is_user_interrupt", "release"]

_MARK = "__hotcb_sigint__"
_users = 0
#: SIGTERM's handler before ours (None: ours is not installed)
_previous_term: Any = None
#: the exit status a SIGTERM ends the process with
TERMINATED_STATUS = 128 + signal.SIGTERM


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Python's default SIGINT behaviour, with the exception marked as a real Ctrl-C.
    (This frame is the last line of a Ctrl-C traceback while hotcb runs.)"""
    exc = KeyboardInterrupt()
    setattr(exc, _MARK, True)
    raise exc


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM: the handler there before ours (if it is a Python one), then a marked
    ``SystemExit`` so the run unwinds and closes like after Ctrl-C."""
    previous = _previous_term
    if callable(previous):
        previous(signum, frame)
    exc = SystemExit(TERMINATED_STATUS)
    setattr(exc, _MARK, True)
    raise exc


def _install_sigterm() -> None:
    global _previous_term
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm or current == signal.SIG_IGN or current is None:
        return  # ours already, or SIGTERM is ignored (or not set from Python): leave it
    _previous_term = current
    signal.signal(signal.SIGTERM, _on_sigterm)


def _release_sigterm() -> None:
    global _previous_term
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, _previous_term or signal.SIG_DFL)
    _previous_term = None


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
        # the users counted so far lost the handler to someone else's signal() call (a
        # kernel left unclosed, then a framework resetting SIGINT): this install owns it alone
        _users = 0
    elif current is not _on_sigint:
        return False  # someone else handles SIGINT: leave it alone
    _users += 1
    _install_sigterm()
    return True


def release() -> None:
    """Undo one :func:`install`; the last one puts Python's default handler back."""
    global _users
    _users = max(0, _users - 1)
    if _users == 0 and _main_thread() and signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _release_sigterm()


def is_user_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's Ctrl-C (to re-raise) rather than an exception that
    callback code raised (to contain like any error).

    With the marking handler in place: a ``KeyboardInterrupt`` raised by a real SIGINT,
    or raised while one was being handled. Without it hotcb cannot tell, so every
    ``KeyboardInterrupt`` counts as the user's when a SIGINT handler could have raised it.
    The ``SystemExit`` a SIGTERM raises (see the module's docstring) counts too.
    """
    if isinstance(exc, SystemExit):
        return getattr(exc, _MARK, False) is True
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
