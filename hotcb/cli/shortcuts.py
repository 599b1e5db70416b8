"""Top-level spellings of the everyday ``cb`` commands: ``hotcb enable ID``,
``hotcb disable ID``, ``hotcb set ID K=V...``, ``hotcb load ID ...`` and ``hotcb unload ID``.

They are the ``hotcb cb`` commands themselves (the same click command objects, registered a
second time under the top-level group), so they check, queue and answer exactly as
``hotcb cb <verb>`` does.

Example:
    >>> import click
    >>> group, sub = click.Group("top"), click.Group("cb")
    >>> @sub.command("enable")
    ... def enable() -> None: ...
    >>> add_shortcuts(group, sub, names=("enable",))
    >>> group.commands["enable"] is sub.commands["enable"]
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import click

__all__ = ["SHORTCUTS", "add_shortcuts"]

#: The ``cb`` commands that are also top-level commands.
SHORTCUTS: tuple[str, ...] = ("enable", "disable", "set", "load", "unload")


def add_shortcuts(group: click.Group, cb: click.Group, names: Sequence[str] = SHORTCUTS) -> None:
    """Register each ``cb`` command in ``names`` under ``group`` by the same name."""
    for name in names:
        group.add_command(cb.commands[name], name)
