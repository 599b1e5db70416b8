"""``hotcb freeze``: switch whether the run takes commands from outside (see :mod:`hotcb.freeze`).

The command itself is always taken, also by a frozen run, and recorded in its ledger. Without
``--mode`` it shows the run's mode (from ``hotcb.state.json``).
"""

from __future__ import annotations

import json

import click

from hotcb.cli.app import RunSelection, pass_selection

__all__ = ["freeze"]

_MODES = ("off", "prod", "replay")  # hotcb.freeze.FREEZE_MODES (not imported for --help)


@click.command("freeze")
@click.option(
    "--mode",
    type=click.Choice(_MODES),
    default=None,
    help="off: take commands; prod / replay: record each as ignored and change nothing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the queued command (or the mode).")
@pass_selection
def freeze(selection: RunSelection, mode: str | None, as_json: bool) -> None:
    """Freeze the run (--mode prod or replay) or let changes in again (--mode off).

    A frozen run records every `hotcb cb ...` command as ignored, with the reason, and
    leaves its callbacks as they are; this command is the one it still takes. Without
    --mode: show the run's mode.

    \b
    hotcb freeze --mode prod
    hotcb freeze --mode off
    """
    from hotcb.freeze import freeze_op

    if mode is None:
        from hotcb.state import read_state

        run = selection.run_dir(read_only=True)
        current = (read_state(run.state) or {}).get("freeze", "off")
        if as_json:
            click.echo(json.dumps({"run_dir": str(run.path), "freeze": current}))
        else:
            click.echo(f"run {run.path}: freeze {current}")
        return
    from hotcb.cli.queue import send

    send(selection, freeze_op(mode).to_dict(), as_json)
