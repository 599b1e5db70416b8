"""A big schedule's entries in a data file beside its option: ``<name>.entries.jsonl``.

Hydra reads YAML in pure Python and deep-copies every node, so a ``hotcb/schedule`` option
with 10,000 inline entries takes half a minute to compose. Above :data:`INLINE_MAX` entries
``hotcb export-config --schedule`` therefore writes the entries to a JSONL file beside the
option, one :class:`~hotcb.schedule.ScheduleEntry` per line with its key first, and the
option names it (with the sha256 of its bytes)::

    # conf/hotcb/schedule/<name>.yaml
    # @package hotcb.schedule
    policy: best_effort
    step_offset: 0
    file: config://hotcb/schedule/<name>.entries.jsonl
    sha256: 3f0c...

    # conf/hotcb/schedule/<name>.entries.jsonl
    {"key": "s120_set_heartbeat", "step": 120, "event": "train_step_end", "op": "set", ...}

Hydra composes the tiny node; the kernel reads the file with the stdlib JSON parser when
the run starts (:func:`read_entries`). Entries written inline in the node merge with the
file's by key (:func:`merge_entries`): an inline node for a file key is merged onto that
entry (``+hotcb.schedule.<key>.params.every=10``), a null one drops it
(``+hotcb.schedule.<key>=null``), any other key is one more entry.

This module is light (no Hydra, no torch).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hotcb.schedule import Schedule
    >>> s = Schedule.from_config({"s5_disable_t": {"step": 5, "op": "disable", "id": "t"}})
    >>> data = entries_jsonl(s)
    >>> data
    b'{"key": "s5_disable_t", "step": 5, "event": null, "op": "disable", "id": "t"}\\n'
    >>> path = Path(tempfile.mkdtemp()) / "a.entries.jsonl"
    >>> _ = path.write_bytes(data)
    >>> entries = read_entries(path, sha256=sha256_bytes(data))
    >>> entries == dict(s.entries)
    True
    >>> merged = merge_entries({"policy": "strict", "s5_disable_t": {"step": 7}}, entries)
    >>> merged.policy, merged.entries["s5_disable_t"].to_dict()
    ('strict', {'step': 7, 'event': None, 'op': 'disable', 'id': 't'})
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from hotcb.files import read_regular
from hotcb.ops import CommandError
from hotcb.schedule import SETTING_KEYS, Schedule, ScheduleEntry, ScheduleError

__all__ = [
    "ENTRIES_SUFFIX",
    "FILE_KEYS",
    "INLINE_MAX",
    "EntriesFileError",
    "entries_jsonl",
    "file_node",
    "merge_entries",
    "read_entries",
    "sha256_bytes",
]

#: The data file of the option ``<name>.yaml`` is ``<name>.entries.jsonl``.
ENTRIES_SUFFIX = ".entries.jsonl"
#: Schedules with more entries than this are written with their entries in a file (smaller
#: ones stay inline, where every Hydra override works on them).
INLINE_MAX = 200
#: The settings of a ``hotcb.schedule`` node that name its entries file (two of
#: :data:`hotcb.schedule.SETTING_KEYS`).
FILE_KEYS: tuple[str, ...] = ("file", "sha256")
# the schedule key grammar (hotcb.schedule): what Hydra's override parser accepts as a key
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class EntriesFileError(ScheduleError):
    """The entries file is missing, corrupt or not the one the option names (``path`` and
    ``line`` say where)."""


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``.

    >>> sha256_bytes(b"")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def entries_jsonl(schedule: Schedule) -> bytes:
    """The entries of ``schedule`` as JSONL, one per line in mapping order, ``key`` first."""
    lines = [
        json.dumps({"key": key, **entry.to_dict()}, ensure_ascii=False)
        for key, entry in schedule.entries.items()
    ]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def file_node(schedule: Schedule, file: str, data: bytes) -> dict[str, Any]:
    """The ``hotcb.schedule`` node of ``schedule`` with its entries in the file named
    ``file`` (a ``config://`` path or a path), which holds ``data`` (:func:`entries_jsonl`).

    >>> file_node(Schedule(), "config://hotcb/schedule/a.entries.jsonl", b"")["file"]
    'config://hotcb/schedule/a.entries.jsonl'
    """
    settings = dataclasses.replace(schedule, entries={}).to_config()
    return {**settings, "file": file, "sha256": sha256_bytes(data)}


def read_entries(
    path: str | os.PathLike[str], *, sha256: str | None = None
) -> dict[str, ScheduleEntry]:
    """The entries in the JSONL file ``path`` (a regular file, never through a symlink),
    each line checked (its JSON, its ``key``, its shape); then, with ``sha256``, that the
    bytes are the ones the option names. Raises :class:`EntriesFileError` naming the file
    and the line."""
    try:
        data = read_regular(path)
    except OSError as exc:
        raise EntriesFileError(
            f"cannot read the schedule's entries file ({exc.strerror or exc}); it is written "
            "beside the option by `hotcb export-config --schedule`",
            path=path,
            key="hotcb.schedule.file",
        ) from None
    entries: dict[str, ScheduleEntry] = {}
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            last = number == len(lines) and not data.endswith(b"\n")
            hint = " (the last line is cut short: the file was half-written)" if last else ""
            raise EntriesFileError(
                f"not valid JSON: {_what(exc)}{hint}; export the schedule again "
                "(hotcb export-config --schedule --force) or mend that line",
                path=path,
                line=number,
            ) from None
        if not isinstance(record, dict):
            raise EntriesFileError(
                f"expected one entry as a JSON object, got {raw[:80]!r}", path=path, line=number
            )
        key = record.pop("key", None)
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or key in SETTING_KEYS:
            raise EntriesFileError(
                f"missing or invalid 'key' {key!r}: a schedule key of letters, digits, '_' "
                f"or '-' (not {', '.join(SETTING_KEYS)})",
                path=path,
                line=number,
            )
        if key in entries:
            raise EntriesFileError(f"key {key!r} appears twice in the file", path=path, line=number)
        try:
            entries[key] = ScheduleEntry.from_dict(record)
        except CommandError as exc:
            raise EntriesFileError(f"{key}: {exc.message}", path=path, line=number) from None
    if sha256 is not None:
        actual = sha256_bytes(data)
        if actual != sha256:
            raise EntriesFileError(
                f"its sha256 is {actual}, not the {sha256} the option names: the file changed "
                "after the export (half-written, or edited). If you edited it on purpose, "
                f"start the run with hotcb.schedule.sha256={actual}",
                path=path,
            )
    return entries


def _what(exc: ValueError) -> str:
    """What is wrong with one line: json's message, placed in the line (not the file)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg}: column {exc.colno}"
    return str(exc)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in over.items():
        old = out.get(name)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[name] = _merged(old, value)
        else:
            out[name] = value
    return out


def merge_entries(node: Mapping[str, Any], entries: Mapping[str, ScheduleEntry]) -> Schedule:
    """The schedule of the ``hotcb.schedule`` node (plain values) whose entries file held
    ``entries``: its settings, then the file's entries in file order (an inline node of the
    same key merged onto one, a null one dropping it), then the other inline entries.
    Raises :class:`~hotcb.schedule.ScheduleError` naming every bad entry's key."""
    rest = {k: v for k, v in node.items() if k not in entries}
    schedule = Schedule.from_config(rest)  # the settings and the inline-only entries
    out: dict[str, ScheduleEntry] = {}
    problems: list[str] = []
    for key, entry in entries.items():
        if key not in node:
            out[key] = entry
            continue
        over = node[key]
        if over is None:
            continue  # +hotcb.schedule.<key>=null drops a file entry
        try:
            if not isinstance(over, Mapping):
                raise ScheduleError(
                    f"expected a mapping merged onto the file's entry, got {over!r}"
                )
            out[key] = ScheduleEntry.from_dict(_merged(entry.to_dict(), over))
        except CommandError as exc:
            problems.append(f"hotcb.schedule.{key}: {exc}")
    if problems:
        raise ScheduleError("; ".join(problems), key="hotcb.schedule")
    out.update(schedule.entries)
    return dataclasses.replace(schedule, entries=out)
