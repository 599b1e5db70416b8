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
:mod:`hotcb.cli.shortcuts`    the same as ``hotcb enable | disable | set | load | unload``
:mod:`hotcb.cli.init`         ``init``: prepare a run dir before the run starts
:mod:`hotcb.cli.opt`          ``opt set | show`` (the optimizer)
:mod:`hotcb.cli.loss`         ``loss set | show`` (the loss state)
:mod:`hotcb.cli.describe`     ``cb list``, ``cb describe``: what a callback lets you change
:mod:`hotcb.cli.table`        aligned tables that fit the terminal
:mod:`hotcb.cli.queue`        validating a command and queueing it to a run or a sweep
:mod:`hotcb.cli.answer`       waiting for the run's answer (``applied at step N``)
:mod:`hotcb.cli.undo`         ``undo [N]``: revert the run's last changes exactly
:mod:`hotcb.cli.dry_run`      ``--dry-run``: the override delta a command would add
:mod:`hotcb.cli.views`        ``status``, ``log``, ``runs``
:mod:`hotcb.cli.export`       ``export-config``
:mod:`hotcb.cli.freeze`       ``freeze``
:mod:`hotcb.cli.recipe`       ``recipe export | import``: the reference's recipe files
============================  ===========================================================

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--help"])
    >>> result.exit_code, "Change a live training run" in result.output
    (0, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from hotcb.cli.app import accept_run_options, cli
from hotcb.cli.change import cb
from hotcb.cli.describe import cb_describe, cb_list
from hotcb.cli.export import export_config
from hotcb.cli.freeze import freeze
from hotcb.cli.init import init
from hotcb.cli.loss import loss
from hotcb.cli.opt import opt
from hotcb.cli.recipe import recipe
from hotcb.cli.shortcuts import add_shortcuts
from hotcb.cli.undo import undo
from hotcb.cli.views import log, runs, status

__all__ = ["cli", "main"]

for _command in (cb, opt, loss, undo, status, log, export_config, freeze, runs, init, recipe):
    cli.add_command(_command)
for _command in (cb_list, cb_describe):
    cb.add_command(_command)
add_shortcuts(cli, cb)
accept_run_options(cli)  # `hotcb status --dir X` as well as `hotcb --dir X status`


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``hotcb``): exits 0 on success, 1 on a user error."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="hotcb")
