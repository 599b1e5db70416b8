"""The command stream: ``hotcb.commands.jsonl``, one JSON command per line.

Writers (the ``hotcb`` CLI, scripts) call :meth:`CommandStream.append`: one locked,
single ``write`` per command, so concurrent writers never interleave or lose a line.
The training process reads with a :class:`CommandReader`, which hands out only
*complete* lines (a half-written line is left alone until its newline arrives) and
remembers its byte offset, so every line is seen exactly once.

A line is at most :data:`MAX_LINE_BYTES` (1 MiB) long and must be UTF-8. A line that is
not is still handed out, with :attr:`CommandLine.error` saying why (the kernel records
it as ``invalid``); a longer line is skipped past its newline without being held in
memory, and the lines after it are read as usual.

Each line also carries a fingerprint of the file up to its end (:meth:`CommandLine.mark`:
the inode and the sha256 of every byte before its offset). The kernel records it in the
line's ledger entry, so a run resumed later can tell whether the file it continues in is
the one it read, or one that was replaced or rewritten while the run was down.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> stream = CommandStream(os.path.join(d, "hotcb.commands.jsonl"))
    >>> _ = stream.append({"op": "disable", "id": "timing"})
    >>> [line.text for line in stream.reader().read_new()]
    ['{"op": "disable", "id": "timing"}']
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.files import FILE_MODE, open_regular, write_all
from hotcb.ops import Op

__all__ = ["MAX_LINE_BYTES", "CommandLine", "CommandReader", "CommandStream"]

#: The longest command line accepted, in bytes without its newline.
MAX_LINE_BYTES = 1 << 20
#: How far one :meth:`CommandReader.read_new` scans through an over-long line.
_SKIP_PER_READ = 16 << 20
_CHUNK = 1 << 20
#: How much of an unusable line is kept to show in the ledger.
_PREVIEW = 2000


@dataclass(frozen=True)
class CommandLine:
    """One complete line read from the stream.

    ``lineno`` is 1-based, ``offset`` is the byte offset just past the line's newline
    (where a resumed reader continues).
    """

    lineno: int
    offset: int
    #: The line, decoded (for an unusable line: a printable preview of its start).
    text: str
    #: Why the line cannot be a command (longer than the cap, not UTF-8), else None.
    error: str | None = None
    #: Length of the line in bytes, without its newline.
    length: int = 0
    #: Inode of the file it was read from.
    inode: int | None = None
    #: sha256 of the file's bytes ``[0, offset)``.
    sha256: str | None = None

    def mark(self) -> dict[str, Any]:
        """What identifies the file as read up to this line, for the payload of the line's
        ledger entry: ``commands_inode`` and ``commands_sha256`` (see
        :meth:`CommandStream.reader`)."""
        return {"commands_inode": self.inode, "commands_sha256": self.sha256}


class CommandStream:
    """Append-only JSONL command file with locked, whole-line appends."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, command: Op | Mapping[str, Any]) -> int:
        """Append one command as a single line, under an exclusive ``flock``; return the
        byte offset just past its newline (the ``offset`` of its ledger entry, by which
        the writer finds the run's answer).

        The line is encoded first, then written with one ``write`` call (looping only
        on a short write) while the lock is held, so lines from concurrent writers
        never interleave. If an earlier writer was cut short (the file does not end
        with a newline), the line starts on a fresh line; if this write is cut short
        (disk full), its part is removed again. Raises ``OSError`` (also for a command
        longer than :data:`MAX_LINE_BYTES`, or a file that is a symlink or a FIFO).
        """
        data = command.to_dict() if isinstance(command, Op) else dict(command)
        line = (json.dumps(data, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode(
            "utf-8"
        )
        if len(line) - 1 > MAX_LINE_BYTES:
            raise OSError(
                errno.E2BIG,
                f"the command is {len(line) - 1} bytes long; a command line may be at most "
                f"{MAX_LINE_BYTES} bytes (1 MiB)",
            )
        fd = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # a writer before us was cut short
                try:
                    write_all(fd, line)
                except OSError:
                    with contextlib.suppress(OSError):  # leave no part of this line behind
                        os.ftruncate(fd, size)
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return size + len(line)

    def reader(
        self, offset: int = 0, lineno: int = 0, *, mark: Mapping[str, Any] | None = None
    ) -> CommandReader:
        """A reader positioned at ``offset`` (bytes) having seen ``lineno`` lines.

        ``mark`` is the :meth:`CommandLine.mark` of the line that ended at ``offset`` (or
        the payload of its ledger entry), if known: the first read checks that the file
        still has those bytes before ``offset`` (see :class:`CommandReader`).
        """
        return CommandReader(self.path, offset=offset, lineno=lineno, mark=mark)


@dataclass
class _LongLine:
    """An over-long line being skipped."""

    lineno: int
    start: int
    head: bytes


class CommandReader:
    """Tails a command file, yielding each complete line once.

    If the file is truncated or replaced (a new inode), the reader starts again from
    the top and sets :attr:`reset_reason` so the caller can say so.

    A reader created at an ``offset`` > 0 (a resumed run) first checks the file it finds:
    if it is shorter than ``offset``, or its bytes before ``offset`` do not hash to the
    ``mark`` recorded when they were read (the file was replaced or rewritten while the
    run was down), it starts again from the top in the same way. A file with the same
    bytes under another inode (a run dir copied or restored) is continued.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        lineno: int = 0,
        mark: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.offset = offset
        self.lineno = lineno
        self.reset_reason: str | None = None
        self._inode: int | None = None
        #: where scanning continues (past ``offset`` while skipping an over-long line)
        self._pos = offset
        #: sha256 of the bytes ``[0, _pos)``; None until a resumed offset is checked
        self._hash: Any = hashlib.sha256() if offset == 0 else None
        mark = mark if isinstance(mark, Mapping) else {}
        sha, inode = mark.get("commands_sha256"), mark.get("commands_inode")
        self._expected = sha if isinstance(sha, str) else None
        self._expected_inode = inode if isinstance(inode, int) else None
        self._long: _LongLine | None = None

    def read_new(self, max_bytes: int = MAX_LINE_BYTES + 1) -> list[CommandLine]:
        """Return the complete lines appended since the last call (oldest first).

        Reads at most ``max_bytes`` of lines per call (at least one line's worth). Raises
        ``OSError`` if the file cannot be read, e.g. :class:`~hotcb.files.NotRegularFileError`
        for a FIFO or a symlink.
        """
        self.reset_reason = None
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if self._inode is not None:
                self._reset("the commands file was removed; waiting for it to reappear")
                self._inode = None
            return []
        try:
            st = os.fstat(fd)
            if self._hash is None:
                self._check_resumed(fd, st)
            elif self._inode is not None and st.st_ino != self._inode:
                self._reset("the commands file was replaced; reading the new file from the top")
            elif st.st_size < self._pos:
                self._reset(
                    f"the commands file shrank to {st.st_size} bytes (was read up to "
                    f"{self._pos}); reading it again from the top"
                )
            self._inode = st.st_ino
            return self._read(fd, st.st_size, max(max_bytes, MAX_LINE_BYTES + 1))
        finally:
            os.close(fd)

    def _check_resumed(self, fd: int, st: os.stat_result) -> None:
        """A resumed reader's first look at the file: is it the one read before?"""
        size = st.st_size
        if size < self.offset:
            self._reset(
                f"the commands file is {size} bytes, shorter than the {self.offset} bytes read "
                "before the restart: it was truncated or replaced while the run was down; "
                "reading it from the top"
            )
            return
        digest = hashlib.sha256()
        pos = 0
        while pos < self.offset:
            chunk = os.pread(fd, min(_CHUNK, self.offset - pos), pos)
            if not chunk:
                break
            digest.update(chunk)
            pos += len(chunk)
        if self._expected is not None and digest.hexdigest() != self._expected:
            how = (
                "it was replaced by another file"
                if self._expected_inode not in (None, st.st_ino)
                else "it was rewritten"
            )
            self._reset(
                f"the commands file changed while the run was down: its first {self.offset} "
                f"bytes are not the ones read before the restart ({how}); reading it from "
                "the top"
            )
            return
        self._hash = digest

    def _read(self, fd: int, size: int, max_bytes: int) -> list[CommandLine]:
        lines: list[CommandLine] = []
        if self._long is not None:
            skipped = self._skip_long(fd, size)
            if skipped is None:
                return lines
            lines.append(skipped)
        if size <= self.offset:
            return lines
        chunk = os.pread(fd, min(size - self.offset, max_bytes), self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) > MAX_LINE_BYTES:  # no newline within the cap: skip the line
                self._long = _LongLine(self.lineno + 1, self.offset, chunk[:_PREVIEW])
                skipped = self._skip_long(fd, size)
                if skipped is not None:
                    lines.append(skipped)
            return lines  # else only a half-written line so far
        pos = 0
        base = self.offset
        digest = self._hash
        view = memoryview(chunk)
        while pos <= end:
            nl = chunk.index(b"\n", pos)
            raw = chunk[pos:nl]
            digest.update(view[pos : nl + 1])
            self.lineno += 1
            start, pos = pos, nl + 1
            if not raw.strip():
                continue
            error = None
            if len(raw) > MAX_LINE_BYTES:
                error = _too_long(len(raw))
                text = raw[:_PREVIEW].decode("utf-8", errors="backslashreplace")
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    text = raw[:_PREVIEW].decode("utf-8", errors="backslashreplace")
                    error = (
                        f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start} of "
                        f"the line (byte {base + start + exc.start} of the file); commands "
                        "must be UTF-8"
                    )
            lines.append(
                CommandLine(
                    self.lineno,
                    base + pos,
                    text,
                    error=error,
                    length=len(raw),
                    inode=self._inode,
                    sha256=digest.hexdigest(),
                )
            )
        self.offset = self._pos = base + end + 1
        return lines

    def _skip_long(self, fd: int, size: int) -> CommandLine | None:
        """Scan on through an over-long line (at most ``_SKIP_PER_READ`` bytes per call,
        hashing, never keeping it); the line, once its newline is found."""
        long = self._long
        assert long is not None
        budget = _SKIP_PER_READ
        while self._pos < size and budget > 0:
            chunk = os.pread(fd, min(_CHUNK, size - self._pos), self._pos)
            if not chunk:
                break
            nl = chunk.find(b"\n")
            if nl < 0:
                self._hash.update(chunk)
                self._pos += len(chunk)
                budget -= len(chunk)
                continue
            self._hash.update(chunk[: nl + 1])
            self._long = None
            self.lineno = long.lineno
            self.offset = self._pos = self._pos + nl + 1
            length = self.offset - 1 - long.start
            return CommandLine(
                long.lineno,
                self.offset,
                long.head.decode("utf-8", errors="backslashreplace"),
                error=_too_long(length),
                length=length,
                inode=self._inode,
                sha256=self._hash.hexdigest(),
            )
        return None

    def _reset(self, reason: str) -> None:
        self.offset = self._pos = 0
        self.lineno = 0
        self._hash = hashlib.sha256()
        self._long = None
        self.reset_reason = reason


def _too_long(length: int) -> str:
    return (
        f"the line is {length} bytes long; a command line may be at most {MAX_LINE_BYTES} "
        "bytes (1 MiB): it was skipped"
    )
