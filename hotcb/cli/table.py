"""Aligned tables that fit the terminal, for ``status``, ``log``, ``cb list`` and ``top``.

The width is the terminal's (``$COLUMNS`` first, as :func:`shutil.get_terminal_size`
reads it; 100 when there is no terminal). A line that would be wider gets its long column
(a target) shortened in the middle, keeping its end (the class name), then its last
column (free text) cut with ``…``. Columns stay aligned.

Example:
    >>> shorten("hotcb.modules.cb.callbacks.timing:TimingCallback", 24)
    'hotcb.mo…:TimingCallback'
    >>> table_lines([("ID", "TARGET", "NOTE"), ("timing", "a" * 40, "ok")], shrink=1, width=30)
    ['ID      TARGET            NOTE', 'timing  aaaaa…aaaaaaaaaa  ok']
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import click

__all__ = ["MIN_WIDTH", "echo_table", "shorten", "table_lines", "terminal_width"]

#: A shortened column keeps at least this many characters.
MIN_WIDTH = 12


def terminal_width() -> int:
    """Columns of the terminal (``$COLUMNS`` if set; 100 without a terminal)."""
    return shutil.get_terminal_size((100, 24)).columns


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters: its start, ``…``, and its longer end."""
    if len(text) <= width:
        return text
    if width < 2:
        return text[:width]
    tail = (width - 1) * 2 // 3
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


def table_lines(
    rows: Sequence[Sequence[str]],
    *,
    shrink: int | None = None,
    width: int | None = None,
    indent: str = "",
) -> list[str]:
    """``rows`` (the first is the header) as aligned lines at most ``width`` wide
    (default: the terminal's): column ``shrink`` is shortened first, then the last
    column (free text) is cut."""
    width = terminal_width() if width is None else width
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    fixed = len(indent) + sum(widths) + 2 * len(widths)
    longest = max(len(row[-1]) for row in cells)
    excess = fixed + longest - width
    if excess > 0 and shrink is not None and shrink < len(widths):
        new = max(MIN_WIDTH, widths[shrink] - excess, len(cells[0][shrink]))
        if new < widths[shrink]:
            for row in cells:
                row[shrink] = shorten(row[shrink], new)
            fixed -= widths[shrink] - new
            widths[shrink] = new
    room = max(width - fixed, 4)
    lines = []
    for row in cells:
        last = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True))
        lines.append((indent + head + ("  " if widths else "") + last).rstrip())
    return lines


def echo_table(
    rows: Sequence[Sequence[str]], *, shrink: int | None = None, indent: str = ""
) -> None:
    """Print :func:`table_lines` of ``rows``."""
    for line in table_lines(rows, shrink=shrink, indent=indent):
        click.echo(line)
