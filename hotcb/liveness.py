"""Is a run's training process still running? The one liveness check of hotcb.

A run names its process by pid and host (in ``hotcb.state.json`` and in the registry of
live runs, :mod:`hotcb.runs`), and the registry also by the process's start time, so a
pid that was reused by another process after the run was killed does not count.
Another host's processes cannot be checked: a run there is trusted to be live.

Example:
    >>> import os
    >>> process_alive(os.getpid()), process_alive(os.getpid(), host="elsewhere")
    (True, True)
    >>> process_alive(os.getpid(), ticks=start_ticks(os.getpid()))
    True
    >>> process_alive(os.getpid(), ticks=-1)  # the pid now belongs to another process
    False
"""

from __future__ import annotations

import os
import socket

__all__ = ["HOSTNAME", "process_alive", "start_ticks"]

#: This machine's name, as runs record it.
HOSTNAME = socket.gethostname()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux; None elsewhere or
    if there is no such process), to tell a reused pid from the process that had it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, host: str | None = None, ticks: int | None = None) -> bool:
    """True if process ``pid`` on ``host`` (None: this one) is running, and, when
    ``ticks`` (its :func:`start_ticks`) is given, is still the process that started then.

    True for another host's process: it cannot be checked from here.
    """
    if host is not None and host != HOSTNAME:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except (OverflowError, ValueError):
        return False  # not a pid at all
    if ticks is not None:
        now = start_ticks(pid)
        if now is not None and now != ticks:
            return False  # the pid was reused by another process
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """True if ``pid`` has exited and only waits to be reaped (Linux; a parent that does
    not reap, e.g. a container's init, keeps it in the process table)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] == b"Z"
