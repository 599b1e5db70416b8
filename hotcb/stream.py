"""The command stream: ``hotcb.commands.jsonl``, one JSON command per line.

Writers (the ``hotcb`` CLI, scripts) call :meth:`CommandStream.append`: one locked,
single ``write`` per command, so concurrent writers never interleave or lose a line.
The training process reads with a :class:`CommandReader`, which hands out only
*complete* lines (a half-written line is left alone until its newline arrives) and
remembers its byte offset, so every line is seen exactly once.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> stream = CommandStream(os.path.join(d, "hotcb.commands.jsonl"))
    >>> stream.append({"op": "disable", "id": "timing"})
    >>> [line.text for line in stream.reader().read_new()]
    ['{"op": "disable", "id": "timing"}']
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.ops import Op

__all__ = ["CommandLine", "CommandReader", "CommandStream"]

#: Files the kernel creates are private to their owner.
FILE_MODE = 0o600


@dataclass(frozen=True)
class CommandLine:
    """One complete line read from the stream.

    ``lineno`` is 1-based, ``offset`` is the byte offset just past the line's newline
    (where a resumed reader continues).
    """

    lineno: int
    offset: int
    text: str


class CommandStream:
    """Append-only JSONL command file with locked, whole-line appends."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, command: Op | Mapping[str, Any]) -> None:
        """Append one command as a single line, under an exclusive ``flock``.

        The line is encoded first, then written with one ``write`` call (looping only
        on a short write) while the lock is held, so lines from concurrent writers
        never interleave.
        """
        data = command.to_dict() if isinstance(command, Op) else dict(command)
        line = (json.dumps(data, ensure_ascii=False, separators=(", ", ": ")) + "\n").encode(
            "utf-8"
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def reader(self, offset: int = 0, lineno: int = 0) -> CommandReader:
        """A reader positioned at ``offset`` (bytes) having seen ``lineno`` lines."""
        return CommandReader(self.path, offset=offset, lineno=lineno)


class CommandReader:
    """Tails a command file, yielding each complete line once.

    If the file is truncated or replaced (a new inode), the reader starts again from
    the top and sets :attr:`reset_reason` so the caller can say so.
    """

    def __init__(self, path: str | os.PathLike[str], *, offset: int = 0, lineno: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset
        self.lineno = lineno
        self.reset_reason: str | None = None
        self._inode: int | None = None

    def read_new(self, max_bytes: int = 1 << 20) -> list[CommandLine]:
        """Return the complete lines appended since the last call (oldest first)."""
        self.reset_reason = None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if self._inode is not None:
                self._reset("the commands file was removed; waiting for it to reappear")
                self._inode = None
            return []
        try:
            st = os.fstat(fd)
            if self._inode is not None and st.st_ino != self._inode:
                self._reset("the commands file was replaced; reading the new file from the top")
            elif st.st_size < self.offset:
                self._reset(
                    f"the commands file shrank to {st.st_size} bytes (was read up to {self.offset}); "
                    "reading it again from the top"
                )
            self._inode = st.st_ino
            if st.st_size == self.offset:
                return []
            chunk = os.pread(fd, min(st.st_size - self.offset, max_bytes), self.offset)
        finally:
            os.close(fd)
        end = chunk.rfind(b"\n")
        if end < 0:
            return []  # only a half-written line so far
        lines: list[CommandLine] = []
        pos = 0
        base = self.offset
        while pos <= end:
            nl = chunk.index(b"\n", pos)
            raw = chunk[pos:nl]
            self.lineno += 1
            pos = nl + 1
            if raw.strip():
                lines.append(
                    CommandLine(self.lineno, base + pos, raw.decode("utf-8", errors="replace"))
                )
        self.offset = base + end + 1
        return lines

    def _reset(self, reason: str) -> None:
        self.offset = 0
        self.lineno = 0
        self.reset_reason = reason
