"""``hotcb cb ...``: the commands that change a run (load, set, enable, disable, unload).

Each builds one command from its arguments and hands it to :func:`hotcb.cli.queue.send`,
which validates it and queues it to the run (or to every live job of a sweep). ``cb load``
also checks the target against the target rule first, from its source, never importing it.

The queueing side (:mod:`hotcb.cli.queue`, :mod:`hotcb.ops` and with it PyYAML) is imported
when a command runs, not when the group is built: ``hotcb --help`` does not pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from hotcb.cli.answer import answer_options
from hotcb.cli.app import HotcbGroup, RunSelection, fail, pass_selection
from hotcb.cli.complete import complete_assignment, complete_id
from hotcb.cli.variadic import KeyValueOption
from hotcb.state import read_state
from hotcb.trust import check_source_file
from hotcb.watchdog import TIMEOUT_KEY

__all__ = ["cb"]

_FORCE_HELP = (
    "Queue even if ID is not in the run's state, or its declared hot params refuse the "
    "values (the run still checks them)."
)
_JSON_HELP = "Print the command and the run's answer as JSON."

#: ``--at-step N`` on every ``hotcb cb`` change command (see docs/replay.md).
at_step_option = click.option(
    "--at-step",
    "at_step",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Apply it when the run reaches step N, not at its next safe point.",
)


def _at_step(selection: RunSelection, data: dict[str, Any], at_step: int | None) -> None:
    """Add ``at_step`` to the command; refuse a step the run (its state file) has passed."""
    if at_step is None:
        return
    if selection.sweep_dir() is None:
        state = read_state(selection.run_dir(read_only=False).state) or {}
        step = state.get("step")
        if isinstance(step, int) and not isinstance(step, bool) and at_step < step:
            fail(f"step {at_step} already passed: the run is at step {step}; nothing was queued")
    data["at_step"] = at_step


@click.group(cls=HotcbGroup)
def cb() -> None:
    """Change callbacks: each command is applied by the run at its next safe point and
    waits for the run's answer (applied at step N, or why it failed)."""


def _assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    from hotcb.ops import CommandError, parse_assignments

    try:
        return parse_assignments(items)
    except CommandError as exc:
        fail(f"{what}: {exc}")


def _allowed_factories(selection: RunSelection) -> list[str]:
    """The ``allowed_factories`` of the run (or of the sweep's jobs), from their state."""
    sweep = selection.sweep_dir()
    if sweep is not None:
        from hotcb.sweep import sweep_jobs

        states: list[Any] = [job.state for job in sweep_jobs(sweep)]
    else:
        states = [read_state(selection.run_dir(read_only=False).state)]
    allowed = [s.get("allowed_factories") for s in states if isinstance(s, dict)]
    return [name for names in allowed if isinstance(names, list) for name in names]


def _check_target(selection: RunSelection, target: dict[str, str]) -> str:
    """Refuse a target that provably breaks the target rule, reading its source only
    (the CLI never imports the user's module). Returns a note when it cannot tell."""
    from hotcb.modules.cb.static_target import check_file_target, check_module_target

    allowed = _allowed_factories(selection)
    path, symbol = target["path"], target["symbol"]
    if target["kind"] == "module":
        verdict = check_module_target(path, symbol, allowed_factories=allowed)
    else:
        if not Path(path).is_file():
            fail("file not found", path=path)
        try:
            verdict = check_file_target(path, symbol, allowed_factories=allowed)
        except SyntaxError as exc:
            column = f" (column {exc.offset})" if exc.offset else ""
            fail(f"syntax error{column}: {exc.msg}", path=path, line=exc.lineno)
        except (OSError, ValueError) as exc:
            fail(f"cannot read it: {exc}", path=path)
    if verdict.verdict == "refused":
        fail(f"{verdict.reason}; nothing was queued")
    if verdict.verdict == "unknown":
        return f" (not checked here: {verdict.reason}; the run checks it before calling it)"
    return ""


@cb.command("load")
@answer_options(timeout_option=False)  # its --timeout is the watchdog budget
@click.argument("cb_id", metavar="ID")
@click.option(
    "--path",
    "--module",
    "module_path",
    metavar="MODULE",
    help="Dotted module path of the callback class.",
)
@click.option(
    "--file", "file_path", metavar="FILE.py", help="A .py file defining the callback class."
)
@click.option(
    "--symbol", required=True, metavar="NAME", help="The callback class (or marked factory)."
)
@click.option(
    "--init",
    "init",
    cls=KeyValueOption,
    multiple=True,
    metavar="K=V...",
    help="Constructor kwargs: --init a=1 b=2, or --init a=1 --init b=2.",
)
@click.option(
    "--param",
    "params",
    cls=KeyValueOption,
    multiple=True,
    metavar="K=V...",
    help="Hot params set after construction (like --init).",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Watchdog budget per call: report a call that runs longer, with its stack "
    "(the reserved init key _timeout_; see docs/reliability.md).",
)
@click.option("--disabled", is_flag=True, help="Load it but leave it disabled.")
@at_step_option
@click.option(
    "--enabled/--no-enabled",
    default=None,
    help="Load it enabled (the default) or disabled (--no-enabled is --disabled).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Skip the up-front check of the target (the run still checks it before calling it).",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@pass_selection
def cb_load(
    selection: RunSelection,
    cb_id: str,
    module_path: str | None,
    file_path: str | None,
    symbol: str,
    init: tuple[str, ...],
    params: tuple[str, ...],
    timeout: float | None,
    disabled: bool,
    at_step: int | None,
    enabled: bool | None,
    force: bool,
    as_json: bool,
) -> None:
    """Load (or replace) callback ID from a module (--path) or a .py file (--file).

    The target must be a class with handle() and set_params(), or a factory marked with
    @hot_factory (docs/protocol.md). That is checked here, from the source, before
    anything is queued; the module is never imported here.

    \b
    hotcb cb load timing --path hotcb.modules.cb.callbacks.timing --symbol TimingCallback
    hotcb cb load feat_viz --file viz.py --symbol FeatureViz --init every=50
    """
    if (module_path is None) == (file_path is None):
        fail("give exactly one of --path MODULE or --file FILE.py")
    if disabled and enabled:
        fail("give --enabled or --disabled, not both")
    if file_path is not None:
        resolved = Path(file_path).expanduser().resolve()
        if not force:  # checked as given: the trust check walks its symlinks itself
            refused = check_source_file(Path(file_path).expanduser().absolute())
            if refused is not None:
                fail(refused)
        target = {"kind": "python_file", "path": str(resolved), "symbol": symbol}
    else:
        assert module_path is not None
        target = {"kind": "module", "path": module_path, "symbol": symbol}
    from hotcb.cli.queue import send, validate

    data: dict[str, Any] = {"op": "load", "id": cb_id, "target": target}
    validate(data)  # a bad id or symbol is reported before the target is looked at
    note = "" if force else _check_target(selection, target)
    if init:
        data["init"] = _assignments(init, "--init")
    if params:
        data["params"] = _assignments(params, "--param")
    if timeout is not None:
        if TIMEOUT_KEY in data.get("init", {}):
            fail(f"give the budget once: --timeout SECONDS or --init {TIMEOUT_KEY}=SECONDS")
        data.setdefault("init", {})[TIMEOUT_KEY] = timeout
    if disabled or enabled is not None:
        data["enabled"] = not disabled and bool(enabled)
    _at_step(selection, data, at_step)
    send(selection, data, as_json, note=note)


def _set_command(name: str, *, hidden: bool, doc: str) -> None:
    @cb.command(name, hidden=hidden, help=doc)
    @answer_options()
    @click.argument("cb_id", metavar="ID", shell_complete=complete_id)
    @click.argument("assignments", nargs=-1, metavar="K=V...", shell_complete=complete_assignment)
    @click.option("--force", is_flag=True, help=_FORCE_HELP)
    @at_step_option
    @click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
    @pass_selection
    def command(
        selection: RunSelection,
        cb_id: str,
        assignments: tuple[str, ...],
        force: bool,
        at_step: int | None,
        as_json: bool,
    ) -> None:
        if "=" in cb_id:  # the reference's `hotcb set lr=...` routes to its opt/loss modules
            fail(
                f"set: the first argument is the callback id, got {cb_id!r}; e.g. "
                "hotcb set heartbeat every=5 (hotcb changes callbacks only: it has no "
                "opt/loss modules, see docs/migrating.md)"
            )
        if not assignments:
            fail(f"nothing to set: give name=value pairs, e.g. hotcb cb set {cb_id} every=5")
        from hotcb.cli.queue import send

        data = {"op": "set", "id": cb_id, "params": _assignments(assignments, "set")}
        _at_step(selection, data, at_step)
        send(selection, data, as_json, check_id=cb_id, force=force)


def _simple_command(op: str, doc: str) -> None:
    @cb.command(op, help=doc)
    @answer_options()
    @click.argument("cb_id", metavar="ID", shell_complete=complete_id)
    @click.option("--force", is_flag=True, help=_FORCE_HELP)
    @at_step_option
    @click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
    @pass_selection
    def command(
        selection: RunSelection, cb_id: str, force: bool, at_step: int | None, as_json: bool
    ) -> None:
        from hotcb.cli.queue import send

        data: dict[str, Any] = {"op": op, "id": cb_id}
        _at_step(selection, data, at_step)
        send(selection, data, as_json, check_id=cb_id, force=force)


_set_command(
    "set",
    hidden=False,
    doc="Set hot params of ID, checked against its declaration first (see: hotcb cb describe "
    "ID). Values follow Hydra's override grammar: every=5 lr=3e-4 on=true tags=[a,b] name='5'.",
)
_set_command("set_params", hidden=True, doc="Alias of `hotcb cb set`.")
_simple_command(
    "enable", "Enable callback ID (also re-enables one that was auto-disabled after an error)."
)
_simple_command("disable", "Disable callback ID (it stays loaded and keeps its params).")
_simple_command("unload", "Unload callback ID (its close() is called).")
