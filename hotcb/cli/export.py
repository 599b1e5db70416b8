"""``hotcb export-config``: the run's live changes as Hydra config (see :mod:`hotcb.hydra.export`,
imported only when the command runs: it needs Hydra's YAML and deltas)."""

from __future__ import annotations

import json

import click

from hotcb.cli.app import RunSelection, UserError, pass_selection
from hotcb.ledger import read_ledger
from hotcb.rundir import RunDir

__all__ = ["export_config"]


@click.command("export-config")
@click.option(
    "--name", default=None, help="Name of the new hotcb/callbacks option (default: from the run)."
)
@click.option(
    "--out",
    default=None,
    metavar="FILE",
    help="Write the YAML here instead of the app's config dir.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["group", "overrides"]),
    default="group",
    show_default=True,
    help="A config-group file, or override deltas on one line.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite the file if it exists (--out FILE, or --name's option).",
)
@click.option(
    "--schedule",
    is_flag=True,
    help="Also write the run's trajectory (every op at its step) as a hotcb/schedule option; "
    "the next command replays it.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {changed, message, path, next_command, problem, text, schedule_path} as JSON.",
)
@pass_selection
def export_config(
    selection: RunSelection,
    name: str | None,
    out: str | None,
    fmt: str,
    force: bool,
    schedule: bool,
    as_json: bool,
) -> None:
    """Turn the run's live changes into Hydra config for the next run.

    Writes a new file (mode 0600) and refuses to overwrite one unless --force; a --name
    that an option of the hotcb/callbacks group already has elsewhere on the app's search
    path (a built-in such as timing) is refused even with --force. The next command is
    composed with Hydra before it is printed. A run with no live change writes nothing
    ("nothing changed since the run's config"). The default form (into the app's config
    dir) is only for your own runs; another user's run can be read with --format overrides
    or written to --out FILE.
    """
    rd = selection.run_dir(read_only=True)
    from hotcb.hydra.export import NOTHING_CHANGED, ExportError
    from hotcb.hydra.export import export_config as do_export

    try:
        result = do_export(rd.path, name=name, out=out, fmt=fmt, force=force, schedule=schedule)
    except ExportError as exc:
        raise UserError.from_error(exc) from None
    _warn_about_ledger(rd)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "changed": result.changed,
                    "message": None if result.changed else NOTHING_CHANGED,
                    "path": str(result.path) if result.path else None,
                    "next_command": result.next_command,
                    "problem": result.problem,
                    "text": result.text,
                    "schedule_path": str(result.schedule_path) if result.schedule_path else None,
                }
            )
        )
        return
    if not result.changed:  # on stderr for --format overrides: $(...) then pastes nothing
        click.echo(f"{NOTHING_CHANGED} ({rd.path}); nothing was written", err=fmt == "overrides")
        return
    if fmt == "overrides":
        click.echo(result.text)
        return
    click.echo(f"wrote {result.path}")
    if result.schedule_path:
        click.echo(f"wrote {result.schedule_path} ({result.schedule_entries} scheduled ops)")
    if result.next_command:
        click.echo(f"next run: {result.next_command}")
    elif result.problem:
        click.echo(f"hotcb: warning: {result.problem}", err=True)


def _warn_about_ledger(rd: RunDir) -> None:
    """Say on stderr what of the ledger the export skipped (a truncated last line, a line
    that is not a valid entry), as ``status`` and ``log`` do."""
    try:
        read = read_ledger(rd.ledger)
    except OSError:
        return  # the export itself read it: a problem now is reported by the next command
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
