"""``hotcb.lock``: one kernel per run directory.

Two kernels on one run dir would both apply every command and write each ledger
``seq`` twice. So the kernel that owns a run dir holds an exclusive, non-blocking
``flock`` on ``hotcb.lock`` from start to close; the file says who holds it (pid, host,
start time). A second kernel on the same dir refuses to start with :class:`RunDirBusy`,
naming the first one's pid.

The lock is released by :meth:`RunDirLock.release` (``HotKernel.close``) or by the OS
when the process ends, however it ends (SIGKILL included). A process forked from the
training process (a DataLoader worker) closes its inherited copy, so it never keeps
the run dir locked after the training process is gone. Readers (``hotcb status``,
``hotcb log``, the CLI) never take the lock. On a file system without ``flock``
support the kernel starts anyway and says that a second kernel would go unnoticed.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "hotcb.lock")
    >>> first = RunDirLock.acquire(path)
    >>> RunDirLock.acquire(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hotcb.runlock.RunDirBusy: ...: run dir in use by another hotcb kernel (pid ...
    >>> first.release()
    >>> RunDirLock.acquire(path).release()
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from hotcb.errors import HotcbError
from hotcb.files import FILE_MODE, open_regular, write_all
from hotcb.liveness import HOSTNAME

__all__ = ["RunDirBusy", "RunDirLock"]

log = logging.getLogger("hotcb")


class RunDirBusy(HotcbError, RuntimeError):
    """Another kernel holds the run directory's lock (``path``: the run dir)."""


#: descriptors of the locks this process holds, closed in forked children
_HELD: dict[int, RunDirLock] = {}


def _forget_in_child() -> None:
    for fd, lock in list(_HELD.items()):
        lock._fd = None
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class RunDirLock:
    """An exclusive ``flock`` on a run dir's ``hotcb.lock``; see the module docs."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @classmethod
    def acquire(cls, path: str | os.PathLike[str]) -> RunDirLock:
        """Take the lock at ``path`` (created 0600). Raises :class:`RunDirBusy` if
        another kernel holds it, or ``OSError`` if the file cannot be opened (e.g.
        :class:`~hotcb.files.NotRegularFileError` for a symlink planted there)."""
        lock = cls(path)
        lock._take()
        return lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _take(self) -> None:
        fd = self._open_locked()
        if fd is None:
            return
        if self._fd is not None:
            self._drop()
        self._fd = fd
        _HELD[fd] = self

    def _open_locked(self) -> int | None:
        """A descriptor holding the lock; None on a file system without ``flock``."""
        for attempt in (1, 2):
            fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                if attempt == 1 and holder.get("pid") == os.getpid():
                    # maybe a kernel of this process that nothing references any more:
                    # collecting it runs its finalizer, which releases the lock
                    gc.collect()
                    continue
                raise RunDirBusy(_busy_message(holder), path=self.path.parent) from None
            except OSError as exc:
                os.close(fd)
                log.warning(
                    "hotcb: cannot lock %s (%s): a second kernel on this run dir would not "
                    "be detected",
                    self.path,
                    exc.strerror or exc,
                )
                return None
            try:
                info = {"pid": os.getpid(), "host": HOSTNAME, "started": time.time()}
                os.ftruncate(fd, 0)
                write_all(fd, (json.dumps(info) + "\n").encode("utf-8"))
            except OSError:
                pass  # the lock holds without its note; a refusal just names no pid
            return fd
        raise AssertionError("unreachable")

    def renew(self) -> str | None:
        """After the run dir was removed and recreated: lock the new ``hotcb.lock``.

        Returns why that failed (another kernel took the dir meanwhile), else None.
        """
        if self._fd is not None:
            try:
                if os.fstat(self._fd).st_ino == os.lstat(self.path).st_ino:
                    return None  # still the same file
            except OSError:
                pass
        try:
            self._take()
        except (RunDirBusy, OSError) as exc:
            return str(exc)
        return None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            self._drop()

    def _drop(self) -> None:
        fd = self._fd
        assert fd is not None
        self._fd = None
        _HELD.pop(fd, None)
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the only descriptor releases the flock


def _holder(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _busy_message(holder: dict[str, Any]) -> str:
    pid, host = holder.get("pid"), holder.get("host")
    who = f"pid {pid}" if pid is not None else "a process that did not say its pid"
    if host and host != HOSTNAME:
        who += f" on host {host}"
    started = holder.get("started")
    if isinstance(started, (int, float)):
        who += f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
    if pid == os.getpid():
        fix = "this process already has a kernel open on it: close() that kernel first"
    else:
        fix = (
            "two kernels on one run dir would apply every command twice; stop that process, "
            "or give this run its own run dir"
        )
    return f"run dir in use by another hotcb kernel ({who}): {fix}"
