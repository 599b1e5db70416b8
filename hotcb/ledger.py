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
import math
import os
import reprlib
import stat
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from hotcb.defaults import DEFAULT_MODULE
from hotcb.errors import LOCATION_FIELDS, HotcbError
from hotcb.files import FILE_MODE, open_regular, read_regular, write_all
from hotcb.scalar import to_scalar

__all__ = ["DECISIONS", "SOURCES", "Ledger", "LedgerEntry", "LedgerRead", "read_ledger"]

log = logging.getLogger("hotcb")

#: Where an entry came from: the command stream, the composed Hydra config, a replay of
#: an earlier ledger (resume), the kernel itself (auto-disable, file reload), or the run's
#: schedule (``hotcb.schedule``, docs/replay.md).
SOURCES: tuple[str, ...] = ("external", "config", "replay", "auto", "schedule")
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
    #: Where the error is, when it says (``path``, ``line``, ``key``, ``target``: the
    #: fields of :class:`~hotcb.errors.HotcbError`); ``error`` is then the message alone.
    location: Mapping[str, Any] | None = None
    #: ``env["phase"]`` when the loop passes one (``train``, ``val``, ...); with ``notes``
    #: (always null here) a field of the reference project's ledger, for its tools.
    phase: str | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as written: plain values, ``step`` and ``epoch`` as numbers or None."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["payload"] = dict(self.payload)  # already plain: no deep copy (any depth works)
        out["location"] = dict(self.location) if self.location is not None else None
        out["step"] = _number_or_none(self.step)
        out["epoch"] = _number_or_none(self.epoch)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Validate one decoded ledger line. Raises ``ValueError`` naming the bad field.

        >>> LedgerEntry.from_dict({"seq": 1e999, "wall_time": 0, "op": "set",
        ...                        "source": "external", "decision": "applied"})
        Traceback (most recent call last):
        ...
        ValueError: 'seq' must be a positive integer, got inf
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"an entry must be a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name, (what, ok, default) in _FIELDS.items():
            value = data.get(name, default)
            if value is _REQUIRED:
                raise ValueError(f"missing {name!r}")
            if not ok(value):
                raise ValueError(f"{name!r} must be {what}, got {reprlib.repr(value)}")
            values[name] = value
        payload = values["payload"] = dict(values["payload"] or {})
        for key in ("target", "init", "params"):  # what replay, log and export read
            if not isinstance(payload.get(key, {}), (dict, type(None))):
                raise ValueError(
                    f"'payload.{key}' must be an object or null, got {reprlib.repr(payload[key])}"
                )
        return cls(**values)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _is_count(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_text(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _is_location(value: Any) -> bool:
    if not isinstance(value, dict) or not set(value) <= set(LOCATION_FIELDS):
        return False
    texts_ok = all(_or_none(_is_text)(value.get(k)) for k in ("path", "key", "target"))
    return texts_ok and _or_none(_is_count(1))(value.get("line"))


def _or_none(ok: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or ok(v)


def _number_or_none(value: Any) -> int | float | None:
    """A step or epoch as the ledger holds it (a tensor or numpy scalar gives its value)."""
    if value is not None and not isinstance(value, (int, float)):
        value = json_default(value)
    return value if _is_number(value) else None


_REQUIRED: Any = object()
#: What each field of a ledger line must hold: (description, check, default if absent).
_FIELDS: dict[str, tuple[str, Callable[[Any], bool], Any]] = {
    "seq": ("a positive integer", _is_count(1), _REQUIRED),
    "wall_time": ("a finite number", _is_number, _REQUIRED),
    "step": ("a number or null", _or_none(_is_number), None),
    "epoch": ("a number or null", _or_none(_is_number), None),
    "event": ("text or null", _or_none(_is_text), None),
    "module": ("text", _is_text, DEFAULT_MODULE),  # a line from before modules
    "op": ("text", _is_text, _REQUIRED),
    "id": ("text or null", _or_none(_is_text), None),
    "source": ("text", _is_text, _REQUIRED),
    "decision": ("text", _is_text, _REQUIRED),
    "payload": ("an object or null", _or_none(lambda v: isinstance(v, dict)), None),
    "error": ("text or null", _or_none(_is_text), None),
    "line": ("a positive integer or null", _or_none(_is_count(1)), None),
    "offset": ("an integer >= 0 or null", _or_none(_is_count(0)), None),
    "location": (
        "null or an object of path, line, key, target",
        _or_none(_is_location),
        None,
    ),
    "phase": ("text or null", _or_none(_is_text), None),
    "notes": ("text or null", _or_none(_is_text), None),
}
assert set(_FIELDS) == {f.name for f in fields(LedgerEntry)}, "every field needs a rule"


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
    value = to_scalar(obj)
    if value is not obj:
        return value
    if isinstance(obj, (set, tuple, frozenset)):
        return list(obj)
    try:
        return repr(obj)
    except Exception:
        return f"<{type(obj).__name__} object (repr failed)>"


def _json_line(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, default=json_default) + "\n").encode("utf-8")


def dumps_line(data: Mapping[str, Any]) -> bytes:
    r"""One ledger entry as one line of UTF-8 JSON. Never raises.

    An entry that cannot be written as it is (text that is not valid Unicode, nesting
    too deep for the encoder, a key JSON cannot hold, ...) is written without its
    payload, with its text escaped and the reason added to ``error``: the line still
    says what happened, and where a resumed run continues reading commands.

    >>> entry = {"seq": 1, "id": "x\udce9", "payload": {"every": 5}, "error": None}
    >>> written = json.loads(dumps_line(entry))
    >>> written["id"], written["payload"], written["error"][:40]
    ('x\\udce9', {}, 'this entry could not be written as JSON ')
    """
    try:
        return _json_line(data)
    except Exception as exc:  # the ledger must never raise into apply
        reason = (
            f"this entry could not be written as JSON ({type(exc).__name__}: {exc}); "
            "its payload was dropped"
        )
        log.error("hotcb: ledger entry seq %s: %s", data.get("seq"), reason)
        minimal = {k: _scalar_or_none(v) for k, v in data.items() if k != "payload"}
        error = "; ".join(str(e) for e in (minimal.get("error"), reason) if e)
        minimal["error"] = _scalar_or_none(error)
        minimal["payload"] = {}
        return _json_line(minimal)


def _scalar_or_none(value: Any) -> Any:
    """``value`` if JSON can always write it (text escaped to valid Unicode), else None."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int) and value.bit_length() < 64:
        return value
    return None


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
        # the highest valid seq: lines that are not valid entries are skipped
        self._seq = max((e.seq for e in existing.entries), default=0)

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
        error: str | BaseException | None = None,
        step: int | None = None,
        epoch: int | None = None,
        event: str | None = None,
        line: int | None = None,
        offset: int | None = None,
        phase: str | None = None,
    ) -> LedgerEntry:
        """Build the next entry, append it, and return it.

        ``error`` may be the exception itself: a :class:`~hotcb.errors.HotcbError` gives
        its message as ``error`` and its fields as ``location``; any other, ``str(error)``.
        """
        location: dict[str, Any] | None = None
        if isinstance(error, HotcbError):
            location = error.location or None
            error = error.message
        elif isinstance(error, BaseException):
            error = str(error)
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
            location=location,
            phase=phase if isinstance(phase, str) else None,
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
    """Read every valid entry of a ledger; skip (and report) every line that is not one.

    A line that is not JSON or not a valid entry (a field of the wrong type, such as
    ``"seq": 1e999``) is listed in :attr:`LedgerRead.bad_lines` with its line number
    and the reason; a truncated last line is kept apart. A missing file reads as empty;
    anything but a regular file (a symlink, a FIFO) raises
    :class:`~hotcb.files.NotRegularFileError` instead of being followed or blocking.
    """
    try:
        raw = read_regular(path)
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
            data = json.loads(line)
        except RecursionError:
            bad.append((n, "not valid JSON: nested too deeply"))
            continue
        except ValueError as exc:  # not JSON, not UTF-8, or a number too long
            bad.append((n, f"not valid JSON: {exc}"))
            continue
        try:
            entries.append(LedgerEntry.from_dict(data))
        except ValueError as exc:
            bad.append((n, str(exc)))
    return LedgerRead(entries=entries, truncated_tail=truncated, bad_lines=bad)
