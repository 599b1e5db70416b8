"""``CommandIntake``: the command file as a training process takes it in.

One component reads ``hotcb.commands.jsonl``, decides whether it may be read at all (its
owner and mode, see :mod:`hotcb.trust`; a FIFO, a symlink or a file it cannot open is
refused), parses every new complete line at the edge (:func:`hotcb.ops.parse_command`),
and records what it cannot use: a bad line becomes a ``failed`` ``invalid`` entry naming
the file, the line and the problem; a refused or unreadable file and a file that was
replaced while the run was down are said once, in the log and the ledger. What it hands
on is only valid ops, each with the line it came from.

:class:`~hotcb.kernel.HotKernel` and, on rank 0,
:class:`~hotcb.distributed.DistributedHotKernel` take commands in through it.

Example:
    >>> import tempfile, os
    >>> from hotcb.ledger import Ledger, read_ledger
    >>> from hotcb.recorder import EntryRecorder
    >>> d = tempfile.mkdtemp()
    >>> entries = EntryRecorder(Ledger(os.path.join(d, "hotcb.applied.jsonl")))
    >>> intake = CommandIntake(os.path.join(d, "hotcb.commands.jsonl"), entries)
    >>> _ = intake.stream.append({"op": "disable", "id": "timing"})
    >>> with open(intake.path, "a") as fh:
    ...     _ = fh.write('{"op": "explode", "id": "x"}\\n')
    >>> [(c.line.lineno, c.op.op, c.op.id) for c in intake.read()]
    [(1, 'disable', 'timing')]
    >>> bad = read_ledger(entries.ledger.path).entries[-1]
    >>> bad.op, bad.line, bad.location["line"], os.path.basename(bad.location["path"])
    ('invalid', 2, 2, 'hotcb.commands.jsonl')
    >>> bad.error
    "unknown op 'explode': expected one of load, set, enable, disable, unload (or set_params)"
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.files import NotRegularFileError
from hotcb.ops import DEFAULT_MODULE, CommandError, Op, parse_command
from hotcb.recorder import EntryRecorder
from hotcb.stream import CommandLine, CommandStream
from hotcb.trust import check_control_file

__all__ = ["Command", "CommandIntake"]

log = logging.getLogger("hotcb")

#: How much of a bad line its ``invalid`` entry keeps.
_RAW_PREVIEW = 2000


@dataclass(frozen=True)
class Command:
    """One valid op, and the line of the command file it was read from."""

    op: Op
    line: CommandLine


class CommandIntake:
    """Reads, trust-checks, parses and records the command file.

    Args:
        path: the command file.
        entries: where refusals and bad lines are recorded (stamped with where the loop is).
        offset / lineno / mark: where to continue reading (a resumed run: after the last
            command its ledger recorded, see :meth:`hotcb.stream.CommandStream.reader`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        entries: EntryRecorder,
        *,
        offset: int = 0,
        lineno: int = 0,
        mark: Mapping[str, Any] | None = None,
    ) -> None:
        self.stream = CommandStream(path)
        self.path = self.stream.path
        self.entries = entries
        self._reader = self.stream.reader(offset=offset, lineno=lineno, mark=mark)
        self._refusals: dict[str, str] = {}
        self._warned: set[str] = set()
        self._read_error: str | None = None

    def read(self) -> Iterator[Command]:
        """The valid ops on the new complete lines (none while the file is not trusted or
        cannot be read), one at a time: a line that is not a valid op is recorded as
        ``invalid`` when the iteration reaches it, so the ledger keeps the file's order
        when the caller records each command before taking the next."""
        for line in self._read_lines():
            op = self.parse(line)
            if op is not None:
                yield Command(op, line)

    def _read_lines(self) -> list[CommandLine]:
        lines: list[CommandLine] = []
        if self.trusted(self.path):
            try:
                lines = self._reader.read_new()
            except OSError as exc:
                self._unreadable(exc)
            else:
                if self._read_error is not None:
                    self._read_error = None
                    log.warning("hotcb: %s can be read again", self.path)
        if self._reader.reset_reason:
            log.warning("hotcb: %s (%s)", self._reader.reset_reason, self.path)
            self.entries.record(module="kernel", op="reset", error=self._reader.reset_reason)
        return lines

    def parse(self, line: CommandLine) -> Op | None:
        """The op on ``line``, or None after logging and recording why it is not one."""
        if line.error is None:
            try:
                return parse_command(line.text)
            except CommandError as exc:
                error = exc.located(path=self.path, line=line.lineno)
        else:
            error = CommandError(line.error, path=self.path, line=line.lineno)
        log.error("hotcb: ignored a bad command: %s", error)
        self.entries.record(
            module=DEFAULT_MODULE,
            op="invalid",
            source="external",
            decision="failed",
            error=error,
            payload={"raw": line.text[:_RAW_PREVIEW], "length": line.length},
            line=line,
        )
        return None

    def trusted(self, path: Path) -> bool:
        """May ``path`` (the command file, a desired-state file) be read? Checks its owner
        and mode (:func:`hotcb.trust.check_control_file`); a change of verdict is said once,
        a refusal also in the ledger."""
        verdict = check_control_file(path)
        key = str(path)
        if verdict.refused:
            if self._refusals.get(key) != verdict.refused:
                self._refusals[key] = verdict.refused
                log.error(
                    "hotcb: %s. Nothing from it is applied until that is fixed.", verdict.refused
                )
                self.entries.record(
                    module="kernel",
                    op="refuse",
                    decision="failed",
                    error=verdict.refused,
                    payload={"path": key},
                )
            return False
        if self._refusals.pop(key, None) is not None:
            log.warning("hotcb: %s is trusted again; reading it", path)
        if verdict.warning and key not in self._warned:
            self._warned.add(key)
            log.warning("hotcb: %s", verdict.warning)
        return True

    def _unreadable(self, exc: OSError) -> None:
        """Report a command file that cannot be read (a FIFO, a symlink, no permission)
        once per distinct problem, in the log and the ledger."""
        if isinstance(exc, NotRegularFileError):
            reason = str(exc)
        else:
            reason = f"cannot read {self.path}: {exc.strerror or exc}"
        if reason == self._read_error:
            return
        self._read_error = reason
        log.error("hotcb: %s. Nothing from it is applied until that is fixed.", reason)
        self.entries.record(
            module="kernel",
            op="refuse",
            decision="failed",
            error=reason,
            payload={"path": str(self.path)},
        )
