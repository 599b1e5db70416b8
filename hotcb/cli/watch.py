"""``hotcb status --watch``: the status view, refreshed in place until Ctrl-C.

Each refresh renders the whole view first, then replaces the screen with it in one
write (on a terminal: cursor home, the view, clear the rest), so it does not flicker. A
view that fails (the run dir went away, its state is unreadable) shows its error line and
the watch goes on. Ctrl-C ends the watch with exit code 0: stopping to look is not an
error. Without a terminal (a pipe) each refresh is printed after a ``--- HH:MM:SS`` line.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable

import click

__all__ = ["watch_status"]

_HOME, _CLEAR_REST = "\x1b[H", "\x1b[J"


def _render(view: Callable[[], None]) -> str:
    """What ``view`` prints (stdout and stderr), or its error line."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            view()
        except click.ClickException as exc:
            exc.show(file=out)
    return out.getvalue()


def watch_status(view: Callable[[], None], interval: float) -> None:
    """Show ``view`` every ``interval`` seconds until Ctrl-C, then return."""
    tty = sys.stdout.isatty()
    try:
        while True:
            stamp = time.strftime("%H:%M:%S")
            frame = f"hotcb status --watch: every {interval:g} s, Ctrl-C to stop ({stamp})\n"
            frame += _render(view)
            if tty:
                lines = frame.replace("\n", _CLEAR_REST.replace("J", "K") + "\n")
                sys.stdout.write(_HOME + lines + _CLEAR_REST)
            else:
                sys.stdout.write(f"--- {stamp}\n{frame}")
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        if tty:
            sys.stdout.write("\n")
        sys.stdout.flush()
