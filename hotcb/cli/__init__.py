"""``hotcb``: change a live training run from another terminal.

Every command that changes something is validated here, at the edge, into a
:class:`~hotcb.ops.Op` and appended to the run's ``hotcb.commands.jsonl`` with one
locked write; the training process applies it at its next safe point. Read-only
commands (``status``, ``log``, ``export-config``) read the run dir's files and never
touch the training process. The CLI imports neither torch nor Hydra (export-config
imports Hydra when it runs).

Exit codes: 0 on success, 1 on a user error (one line on stderr, ``hotcb: error: ...``).

============================  ===========================================================
:mod:`hotcb.cli.app`          the group, its errors, which run or sweep a command acts on
:mod:`hotcb.cli.change`       ``cb load | set | enable | disable | unload``
:mod:`hotcb.cli.describe`     ``cb list``, ``cb describe``: what a callback lets you change
:mod:`hotcb.cli.table`        aligned tables that fit the terminal
:mod:`hotcb.cli.queue`        validating a command and queueing it to a run or a sweep
:mod:`hotcb.cli.views`        ``status``, ``log``, ``runs``
:mod:`hotcb.cli.export`       ``export-config``
============================  ===========================================================

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--help"])
    >>> result.exit_code, "Change a live training run" in result.output
    (0, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from hotcb.cli.app import cli
from hotcb.cli.change import cb
from hotcb.cli.describe import cb_describe, cb_list
from hotcb.cli.export import export_config
from hotcb.cli.views import log, runs, status

__all__ = ["cli", "main"]

for _command in (cb, status, log, export_config, runs):
    cli.add_command(_command)
for _command in (cb_list, cb_describe):
    cb.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``hotcb``): exits 0 on success, 1 on a user error."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="hotcb")
