"""How hotcb opens and writes files: regular files only, never through a symlink.

A run dir may be writable by others (a Hydra output dir made under ``umask 000``), and a
command file, a desired-state YAML or a ``.py`` callback may be a FIFO or a device by
mistake. So every file hotcb opens goes through :func:`open_regular`, which

* opens with ``O_NOFOLLOW`` (a symlink planted at a file's name is refused, not followed),
  ``O_NONBLOCK`` (opening a FIFO cannot hang the training process) and ``O_CLOEXEC``;
* refuses anything that is not a regular file, with a message naming the path and what
  it is, as a :class:`NotRegularFileError` (an ``OSError``, so callers that already
  handle I/O errors report it);
* then clears ``O_NONBLOCK``, so the regular file behaves as usual.

:func:`write_private` is the one writer of hotcb's private files (the state file, captured
sources, the launch record, the run registry, exports): it replaces a file atomically (a
temporary file with an unpredictable name, created with ``O_EXCL | O_NOFOLLOW`` so nothing
planted at that name is ever written through, mode :data:`FILE_MODE`, renamed over the
target) or creates a new one exclusively. :func:`write_all` is the one loop that finishes a
short ``write(2)``.

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_private(os.path.join(d, "state.json"), b"{}")
    >>> fd = open_regular(os.path.join(d, "state.json"), os.O_RDONLY)
    >>> os.read(fd, 10), oct(os.fstat(fd).st_mode & 0o777)
    (b'{}', '0o600')
    >>> os.close(fd)
    >>> os.symlink(os.path.join(d, "state.json"), os.path.join(d, "link"))
    >>> open_regular(os.path.join(d, "link"), os.O_RDONLY)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hotcb.files.NotRegularFileError: refusing .../link: it is a symbolic link, not a regular file (...)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "FILE_MODE",
    "NotRegularFileError",
    "open_regular",
    "read_regular",
    "write_all",
    "write_private",
]

#: Mode of every file hotcb creates: readable and writable by its owner only.
FILE_MODE = 0o600

_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class NotRegularFileError(OSError):
    """A path that hotcb would open is a symlink, FIFO, directory, device or socket."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message names the path and what to do


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refusal(path: str | os.PathLike[str], mode: int) -> NotRegularFileError:
    kind = _kind(mode)
    hint = (
        "hotcb never follows a symlink here; replace it with the file itself"
        if stat.S_ISLNK(mode)
        else "hotcb reads and writes regular files only; replace it with one"
    )
    return NotRegularFileError(
        errno.EINVAL if not stat.S_ISLNK(mode) else errno.ELOOP,
        f"refusing {os.fspath(path)}: it is {kind}, not a regular file ({hint})",
    )


def open_regular(path: str | os.PathLike[str], flags: int, mode: int = FILE_MODE) -> int:
    """Open ``path`` (``os.open`` flags) as a regular file without following a symlink.

    Returns a blocking file descriptor. Raises :class:`NotRegularFileError` if ``path``
    is a symlink, FIFO, directory, device or socket (opening a FIFO never blocks), and
    any other ``OSError`` as ``os.open`` would (``FileNotFoundError``, ...).
    """
    try:
        fd = os.open(path, flags | _OPEN_FLAGS, mode)
    except OSError as exc:
        # ELOOP: a symlink under O_NOFOLLOW; ENXIO: a FIFO opened for writing with no
        # reader; EISDIR: a directory opened for writing
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            try:
                st = os.lstat(path)
            except OSError:
                raise exc from None
            if not stat.S_ISREG(st.st_mode):
                raise _refusal(path, st.st_mode) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refusal(path, st.st_mode)
        # F_SETFL takes only the status flags (O_APPEND, O_NONBLOCK, ...) from these
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _OPEN_FLAGS) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of ``path``, a regular file opened without following a symlink.

    Raises :class:`NotRegularFileError` for a symlink, FIFO (never blocks), directory,
    device or socket, and ``FileNotFoundError`` and the like as ``open`` would.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "f")
    >>> write_private(p, b"hello")
    >>> read_regular(p)
    b'hello'
    >>> os.symlink(p, os.path.join(d, "link"))
    >>> read_regular(os.path.join(d, "link"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hotcb.files.NotRegularFileError: refusing ...link: it is a symbolic link, not a regular file ...
    """
    with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as fh:
        return fh.read()


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, continuing after a short ``write(2)``.

    Raises the ``OSError`` of the write that failed (part of ``data`` may be written).
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_private(path: str | os.PathLike[str], data: bytes, *, replace: bool = True) -> None:
    """Write ``data`` to ``path`` as a file readable by its owner only (mode
    :data:`FILE_MODE` whatever the umask), never through a symlink.

    ``replace=True`` (the default) replaces ``path`` atomically: written to a temporary
    file beside it (an unpredictable name, created exclusively), then renamed over
    ``path``, so a reader sees the old file or the new one, never a part, and a symlink at
    ``path`` is replaced, not followed. ``replace=False`` writes a new file: ``path`` is
    created exclusively (``FileExistsError`` if anything is there, a symlink included) and
    removed again if the write fails.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp") if replace else target
    fd = open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have taken more away
            write_all(fd, data)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
