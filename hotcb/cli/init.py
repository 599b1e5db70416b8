"""``hotcb init``: prepare a run dir before the training script starts.

Creates the run dir (mode 0700, with ``hotcb.sources/``), an empty desired-state file
``hotcb.yaml`` and an empty command file ``hotcb.commands.jsonl`` (both mode 0600), keeps any
of them that already exist, and prints how to point a training script at the dir. The
kernel creates the ledger and the state file itself when it starts.

Example:
    >>> import tempfile, os
    >>> from click.testing import CliRunner
    >>> from hotcb.cli import cli
    >>> run = os.path.join(tempfile.mkdtemp(), "exp1")
    >>> result = CliRunner().invoke(cli, ["--dir", run, "init"])
    >>> result.exit_code, sorted(os.listdir(run))
    (0, ['hotcb.commands.jsonl', 'hotcb.sources', 'hotcb.yaml'])
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from hotcb.cli.app import RunSelection, fail, pass_selection
from hotcb.files import NotRegularFileError, write_private
from hotcb.rundir import RunDir
from hotcb.trust import check_run_dir, foreign_owner

__all__ = ["DESIRED_TEMPLATE", "init"]

#: What ``hotcb init`` writes to ``hotcb.yaml``: no callbacks, and how to declare one.
DESIRED_TEMPLATE = """\
# hotcb desired state (docs/protocol.md#the-desired-state-file): whenever this file
# changes, the run loads, tunes, enables/disables and unloads callbacks to match it.
#
# callbacks:
#   timing:
#     target: {kind: module, path: hotcb.modules.cb.callbacks.timing, symbol: TimingCallback}
#     init: {every: 50}
#     params: {window: 100}
#     enabled: true
version: 1
callbacks: {}
"""


def _target(selection: RunSelection, path: str | None) -> Path:
    if selection.sweep is not None:
        fail("init prepares one run dir: give --dir RUN_DIR, not --sweep")
    given = [p for p in (path, selection.explicit) if p is not None]
    if len({str(Path(p).expanduser().resolve()) for p in given}) > 1:
        fail("give the run dir once: hotcb --dir RUN_DIR init, or hotcb init RUN_DIR")
    chosen = given[0] if given else os.environ.get("HOTCB_RUN_DIR")
    if not chosen:
        fail("which run dir? hotcb --dir RUN_DIR init (or hotcb init RUN_DIR, or $HOTCB_RUN_DIR)")
    return Path(chosen).expanduser().resolve()


@click.command("init")
@click.argument("path", required=False, metavar="[RUN_DIR]")
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
@pass_selection
def init(selection: RunSelection, path: str | None, as_json: bool) -> None:
    """Create a run dir for a training script: hotcb.yaml and hotcb.commands.jsonl.

    Files that exist are kept. The run dir is mode 0700, the files 0600.

    \b
    hotcb --dir runs/exp1 init
    python train.py hotcb.run_dir=runs/exp1      # or HotKernel(run_dir="runs/exp1")
    """
    target = _target(selection, path)
    if target.exists() and not target.is_dir():
        fail("exists and is not a directory", path=target)
    owner = foreign_owner(target) if target.exists() else None
    if owner is not None:
        fail(f"run dir belongs to {owner}, not to you: init your own run dirs", path=target)
    try:
        run = RunDir(target).ensure()
    except OSError as exc:
        fail(f"cannot create it: {exc.strerror or exc}", path=target)
    created, kept = [], []
    for file, content in ((run.desired, DESIRED_TEMPLATE), (run.commands, "")):
        try:
            write_private(file, content.encode("utf-8"), replace=False)
            created.append(file.name)
        except FileExistsError:
            if not file.is_file() or file.is_symlink():
                fail("exists and is not a regular file; remove it and run init again", path=file)
            kept.append(file.name)
        except (NotRegularFileError, OSError) as exc:
            fail(f"cannot create it: {exc}", path=file)
    warning = check_run_dir(run.path).warning
    if warning:
        click.echo(f"hotcb: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps({"run_dir": str(run.path), "created": created, "kept": kept}))
        return
    click.echo(f"run dir {run.path}")
    for name in created:
        click.echo(f"  created {name}")
    for name in kept:
        click.echo(f"  kept    {name} (it exists)")
    click.echo(
        "Point a training script at it:\n"
        f'  Python: kernel = HotKernel(run_dir="{run.path}")\n'
        f"  Hydra:  python train.py hotcb.run_dir={run.path}\n"
        f"  or:     export HOTCB_RUN_DIR={run.path}   (the hotcb CLI then finds it too)\n"
        f"Then change it from another terminal: hotcb --dir {run.path} status"
    )
