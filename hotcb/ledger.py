"""The ledger: ``hotcb.applied.jsonl``, one line per processed command.

Every command the kernel reads (and every change it makes on its own, such as
auto-disabling a failing callback) becomes one :class:`LedgerEntry`, written as a
single line and flushed at once, so a crash (even SIGKILL) leaves a file whose
complete lines are all valid. ``fsync="always"`` also forces each line to disk (survives
power loss, costs a disk round trip per entry); the default ``"never"`` leaves that to
the OS.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "hotcb.applied.jsonl")
    >>> ledger = Ledger(path)
    >>> e = ledger.record(module="cb", op="set", id="hb", source="external",
    ...                   decision="applied", payload={"params": {"every": 5}})
    >>> e.seq
    1
    >>> read_ledger(path).entries[0].payload
    {'params': {'every': 5}}
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hotcb.files import FILE_MODE, open_regular, write_all

__all__ = ["DECISIONS", "SOURCES", "Ledger", "LedgerEntry", "LedgerRead", "read_ledger"]

log = logging.getLogger("hotcb")

#: Where an entry came from: the command stream, the composed Hydra config, a replay of
#: an earlier ledger (resume), or the kernel itself (auto-disable, file reload).
SOURCES: tuple[str, ...] = ("external", "config", "replay", "auto")
DECISIONS: tuple[str, ...] = ("applied", "failed", "ignored")

FsyncPolicy = Literal["never", "always"]

#: Ledger entries held in memory while the ledger cannot be written, at most.
MAX_HELD_BYTES = 16 << 20


@dataclass(frozen=True)
class LedgerEntry:
    """One processed command (or kernel-initiated change)."""

    seq: int
    wall_time: float
    step: int | None
    epoch: int | None
    event: str | None
    module: str
    op: str
    id: str | None
    source: str
    decision: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: 1-based line number in the commands file (external commands only).
    line: int | None = None
    #: Byte offset just past that line: where a resumed run continues reading.
    offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        return cls(
            seq=int(data["seq"]),
            wall_time=float(data["wall_time"]),
            step=data.get("step"),
            epoch=data.get("epoch"),
            event=data.get("event"),
            module=str(data.get("module", "cb")),
            op=str(data["op"]),
            id=data.get("id"),
            source=str(data["source"]),
            decision=str(data["decision"]),
            payload=dict(data.get("payload") or {}),
            error=data.get("error"),
            line=data.get("line"),
            offset=data.get("offset"),
        )


@dataclass(frozen=True)
class LedgerRead:
    """What :func:`read_ledger` found: valid entries, and anything it had to skip."""

    entries: list[LedgerEntry]
    #: A last line without a newline (a write cut short by a crash), if any.
    truncated_tail: str | None = None
    #: ``(line number, reason)`` for complete lines that are not valid entries.
    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def warnings(self) -> list[str]:
        out = [f"ledger line {n} skipped: {why}" for n, why in self.bad_lines]
        if self.truncated_tail is not None:
            out.append(
                f"ledger ends with a truncated line ({len(self.truncated_tail)} bytes, "
                "a write cut short by a crash); it was ignored"
            )
        return out


def json_default(obj: Any) -> Any:
    """Make anything loggable: tensors and other objects become their repr."""
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return item()
        except Exception:
            pass
    if isinstance(obj, (set, tuple, frozenset)):
        return list(obj)
    return repr(obj)


def dumps_line(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, default=json_default) + "\n").encode("utf-8")


class Ledger:
    """Append-only writer for ``hotcb.applied.jsonl``.

    ``seq`` continues from the last entry already in the file, so a resumed run keeps
    one unbroken sequence. A write that fails (disk full, run dir removed) is reported
    once through the ``hotcb`` logger and training is never interrupted by the ledger:
    the part of the line that was written is removed again, and the entry is held in
    memory (up to :data:`MAX_HELD_BYTES`) and written, in order, before the next entry
    once writes work again. Each entry starts on a fresh line, whatever an earlier
    crash or failed write left at the end of the file.

    The ledger is opened for each entry, as a regular file and never through a symlink
    (:func:`~hotcb.files.open_regular`); a ledger that is not a regular file when the
    run starts is refused with :class:`~hotcb.files.NotRegularFileError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: FsyncPolicy = "never") -> None:
        if fsync not in ("never", "always"):
            raise ValueError(f"fsync must be 'never' or 'always', got {fsync!r}")
        self.path = Path(path)
        self.fsync = fsync
        self._seq = 0
        self._failing: str | None = None
        #: encoded entries not written yet (a write failed), oldest first
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._dropped = 0
        #: check that the file ends with a newline before the next write (at the start,
        #: and after a write whose part could not be removed)
        self._check_tail = True
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            # the same refusal as open_regular gives, before anything is read through it
            os.close(open_regular(self.path, os.O_RDONLY))
        existing = read_ledger(self.path)
        if existing.entries:
            self._seq = existing.entries[-1].seq

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def unwritten(self) -> int:
        """Entries held in memory because their write failed."""
        return len(self._held)

    def record(
        self,
        *,
        module: str,
        op: str,
        id: str | None,
        source: str,
        decision: str,
        payload: Mapping[str, Any] | None = None,
        error: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        event: str | None = None,
        line: int | None = None,
        offset: int | None = None,
    ) -> LedgerEntry:
        """Build the next entry, append it, and return it."""
        self._seq += 1
        entry = LedgerEntry(
            seq=self._seq,
            wall_time=time.time(),
            step=step,
            epoch=epoch,
            event=event,
            module=module,
            op=op,
            id=id,
            source=source,
            decision=decision,
            payload=dict(payload or {}),
            error=error,
            line=line,
            offset=offset,
        )
        self.append(entry)
        return entry

    def append(self, entry: LedgerEntry) -> bool:
        """Write one entry as one line (after any entries held back by a failed write).

        Returns False (and logs once) if it could not be written now; it is then held
        and written before the next entry that can be.
        """
        data = dumps_line(entry.to_dict())
        if self._held_bytes + len(data) > MAX_HELD_BYTES:
            self._dropped += 1
            if self._dropped == 1:
                log.error(
                    "hotcb: %d bytes of ledger entries are waiting for the ledger to be "
                    "writable; further entries are dropped until it is (%s)",
                    self._held_bytes,
                    self.path,
                )
            return False
        self._held.append(data)
        self._held_bytes += len(data)
        return self.flush()

    def flush(self) -> bool:
        """Write the entries held back by failed writes. True if none are left."""
        if not self._held:
            return True
        try:
            self._write_held()
        except OSError as exc:
            reason = f"{exc.strerror or exc} ({self.path})"
            if self._failing != reason:
                log.error(
                    "hotcb: cannot write the ledger: %s. Training continues; entries are "
                    "kept in memory and written when the ledger can be written again.",
                    reason,
                )
            self._failing = reason
            return False
        if self._failing is not None or self._dropped:
            dropped = f"; {self._dropped} entries were dropped meanwhile" if self._dropped else ""
            log.warning("hotcb: ledger writes work again (%s)%s", self.path, dropped)
            self._failing = None
            self._dropped = 0
        return True

    def _write_held(self) -> None:
        fd = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            while self._held:
                data = self._held[0]
                if self._check_tail and size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a crash or a failed write cut the last line
                try:
                    write_all(fd, data)
                except OSError:
                    try:  # take the part that was written out again
                        os.ftruncate(fd, size)
                    except OSError:
                        self._check_tail = True
                    raise
                self._check_tail = False
                size += len(data)
                self._held_bytes -= len(self._held.popleft())
            if self.fsync == "always":
                os.fsync(fd)
        finally:
            os.close(fd)


def read_ledger(path: str | os.PathLike[str]) -> LedgerRead:
    """Read every valid entry of a ledger, tolerating a truncated last line.

    A missing file reads as empty.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return LedgerRead(entries=[])
    entries: list[LedgerEntry] = []
    bad: list[tuple[int, str]] = []
    truncated: str | None = None
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if tail.strip():
        truncated = tail.decode("utf-8", errors="replace")
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(LedgerEntry.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append((n, f"{type(exc).__name__}: {exc}"))
    return LedgerRead(entries=entries, truncated_tail=truncated, bad_lines=bad)
