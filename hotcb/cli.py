"""``hotcb``: change a live training run from another terminal.

Every command that changes something is validated here, at the edge, into a
:class:`~hotcb.ops.Op` and appended to the run's ``hotcb.commands.jsonl`` with one
locked write; the training process applies it at its next safe point. Read-only
commands (``status``, ``log``, ``export-config``) read the run dir's files and never
touch the training process. This module imports neither torch nor Hydra (export-config
imports Hydra when it runs).

Exit codes: 0 on success, 1 on a user error (one line on stderr, ``hotcb: error: ...``).

Example:
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cli, ["--help"])
    >>> result.exit_code, "Change a live training run" in result.output
    (0, True)
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click

from hotcb.files import NotRegularFileError, open_regular
from hotcb.ledger import LedgerEntry, LedgerRead, read_ledger
from hotcb.ops import CommandError, Op, parse_assignments
from hotcb.rundir import LAUNCH_FILE, RunDir
from hotcb.runs import RunNotFound, live_runs, recent_runs, resolve_run_dir
from hotcb.state import is_live, read_state
from hotcb.stream import CommandStream
from hotcb.trust import check_control_file, check_source_file, foreign_owner
from hotcb.watchdog import TIMEOUT_KEY, StuckCall, parse_timeout, read_stuck

__all__ = ["cli", "main"]


class UserError(click.ClickException):
    """A mistake the user can fix: printed as one line, exit code 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"hotcb: error: {self.format_message()}", err=True)


class _Group(click.Group):
    """A group whose usage errors also exit 1 with one line on stderr."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            click.echo("hotcb: aborted", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            hint = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"hotcb: error: {exc.format_message()}{hint}", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str) -> NoReturn:
    raise UserError(message)


def _read_ledger(rd: RunDir) -> LedgerRead:
    """The run's ledger; one clear error (not a hang, not a traceback) for a ledger that
    is a symlink, a FIFO or unreadable."""
    try:
        return read_ledger(rd.ledger)
    except NotRegularFileError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot read {rd.ledger}: {exc.strerror or exc}")


# -- the run dir ----------------------------------------------------------------------


class _Ctx:
    def __init__(self, run_dir: str | None, sweep: str | None = None) -> None:
        self.explicit = run_dir
        self.sweep = sweep

    def sweep_dir(self) -> Path | None:
        """The sweep to act on: ``--sweep DIR`` (``latest``: this user's latest sweep)."""
        if self.sweep is None:
            return None
        from hotcb.sweep import SWEEP_MARKER, latest_sweep

        if self.sweep == "latest":
            found = latest_sweep()
            if found is None:
                _fail("no sweep found: the latest hotcb run was not a Hydra multirun job")
            return found
        path = Path(self.sweep).expanduser().resolve()
        if not path.is_dir():
            _fail(f"sweep dir {path} does not exist")
        if not (path / SWEEP_MARKER).is_file():
            _fail(f"{path} is not a Hydra sweep dir (no {SWEEP_MARKER}); give the multirun dir")
        return path

    def run_dir(self, *, read_only: bool) -> RunDir:
        try:
            path = resolve_run_dir(self.explicit, read_only=read_only)
        except RunNotFound as exc:
            from hotcb.sweep import latest_sweep

            sweep = latest_sweep() if len(live_runs()) > 1 else None
            hint = f"; they are jobs of one sweep: use --sweep {sweep}" if sweep else ""
            _fail(f"{exc}{hint}")
        if not path.is_dir():
            _fail(f"run dir {path} does not exist")
        return RunDir(path)


pass_ctx = click.make_pass_decorator(_Ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--dir",
    "run_dir",
    metavar="RUN_DIR",
    help="The run directory. Default: $HOTCB_RUN_DIR, else the single live run of this user "
    "(read-only commands fall back to the most recent run).",
)
@click.option(
    "--sweep",
    metavar="SWEEP_DIR",
    help="A Hydra multirun dir (or 'latest'): `cb` commands go to every live job of the "
    "sweep; `status` lists its jobs.",
)
@click.version_option(package_name="hotcb", prog_name="hotcb")
@click.pass_context
def cli(ctx: click.Context, run_dir: str | None, sweep: str | None) -> None:
    """Change a live training run: load, tune, disable and unload callbacks while it trains.

    \b
    hotcb cb set heartbeat every=5
    hotcb cb load feat_viz --file viz.py --symbol FeatureViz --init every=50
    hotcb cb disable timing
    hotcb status
    hotcb log --follow
    hotcb export-config
    hotcb --sweep multirun/2026-11-25/12-00-00 cb set heartbeat every=5
    """
    if run_dir and sweep:
        _fail("give --dir RUN_DIR or --sweep SWEEP_DIR, not both")
    ctx.obj = _Ctx(run_dir, sweep)


# -- cb: commands that change the run ---------------------------------------------------


@cli.group()
def cb() -> None:
    """Queue callback changes (applied by the run at its next safe point)."""


def _known_ids(rd: RunDir) -> dict[str, Any] | None:
    state = read_state(rd.state)
    if state is None:
        return None
    callbacks = state.get("callbacks")
    return callbacks if isinstance(callbacks, dict) else {}


def _check_id(rd: RunDir, cb_id: str, force: bool) -> None:
    if force:
        return
    known = _known_ids(rd)
    if known is None:
        _fail(
            f"{rd.path} has no {rd.state.name}: no run has used this dir yet "
            "(check --dir, or queue anyway with --force)"
        )
    if cb_id not in known:
        names = ", ".join(sorted(known)) or "none"
        _fail(f"unknown callback id {cb_id!r}; known ids: {names} (queue anyway with --force)")


def _not_writable(run_dir: Path) -> str | None:
    """Why this user must not queue commands to ``run_dir`` (None if it may)."""
    owner = foreign_owner(run_dir)
    if owner is not None:
        return (
            f"run dir {run_dir} belongs to {owner}, not to you (uid {os.geteuid()}): hotcb "
            "writes commands only to your own runs (reading it with status or log is fine)"
        )
    refused = check_control_file(RunDir(run_dir).commands).refused
    if refused is not None:
        return f"{refused} (the run would not read commands from it)"
    return None


def _queue(rd: RunDir, data: dict[str, Any], as_json: bool, note: str = "") -> None:
    try:
        op = Op.from_dict(data)
    except CommandError as exc:
        _fail(str(exc))
    try:
        CommandStream(rd.commands).append(op)
    except OSError as exc:
        _fail(f"cannot append to {rd.commands}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps({"queued": op.to_dict(), "run_dir": str(rd.path)}))
        return
    live = "" if is_live(read_state(rd.state)) else " (no live run: applied when one starts here)"
    click.echo(f"queued {_describe_op(op)} -> {rd.path}{live}{note}")


def _send(
    ctx: _Ctx,
    data: dict[str, Any],
    as_json: bool,
    *,
    check_id: str | None = None,
    force: bool = False,
    note: str = "",
) -> None:
    """Queue one command to the run, or with ``--sweep`` to every live job of the sweep."""
    _check_reserved(data)
    sweep = ctx.sweep_dir()
    if sweep is None:
        rd = ctx.run_dir(read_only=False)
        refused = _not_writable(rd.path)
        if refused is not None:
            _fail(refused)
        if check_id is not None:
            _check_id(rd, check_id, force)
        elif data["op"] == "load" and data["id"] in (_known_ids(rd) or {}):
            note = f" (replaces the loaded {data['id']!r}){note}"
        _queue(rd, data, as_json, note)
        return
    _send_to_sweep(sweep, data, as_json, check_id=check_id, force=force)


def _check_reserved(data: dict[str, Any]) -> None:
    """Refuse a bad value of a reserved key here, before it is queued."""
    for part in ("init", "params"):
        kwargs = data.get(part) or {}
        if TIMEOUT_KEY in kwargs:
            try:
                parse_timeout(kwargs[TIMEOUT_KEY])
            except ValueError as exc:
                _fail(f"{exc}; nothing was queued")


def _send_to_sweep(
    sweep: Path, data: dict[str, Any], as_json: bool, *, check_id: str | None, force: bool
) -> None:
    from hotcb.sweep import sweep_jobs

    try:
        op = Op.from_dict(data)
    except CommandError as exc:
        _fail(str(exc))
    jobs = sweep_jobs(sweep)
    if not jobs:
        _fail(f"sweep {sweep} has no hotcb jobs yet (no {RunDir(sweep).state.name} below it)")
    report: list[dict[str, Any]] = []
    for job in jobs:
        row: dict[str, Any] = {"job": job.name, "run_dir": str(job.run_dir), "live": job.live}
        known = (job.state.get("callbacks") or {}) if isinstance(job.state, dict) else {}
        if not job.live:
            row.update(queued=False, reason="not live")
        elif (owner := foreign_owner(job.run_dir)) is not None:
            row.update(queued=False, reason=f"run of {owner}, not yours")
        elif (refused := check_control_file(RunDir(job.run_dir).commands).refused) is not None:
            row.update(queued=False, reason=refused)
        elif check_id is not None and not force and check_id not in known:
            row.update(queued=False, reason=f"unknown id {check_id!r}")
        else:
            try:
                CommandStream(RunDir(job.run_dir).commands).append(op)
                row.update(queued=True, reason=None)
            except OSError as exc:
                row.update(queued=False, reason=f"cannot append: {exc.strerror or exc}")
        report.append(row)
    sent = [r for r in report if r["queued"]]
    if as_json:
        click.echo(json.dumps({"queued": op.to_dict(), "sweep_dir": str(sweep), "jobs": report}))
    else:
        click.echo(f"sweep {sweep}: {_describe_op(op)}")
        width = max(len(r["job"]) for r in report)
        for r in report:
            outcome = "queued" if r["queued"] else f"skipped ({r['reason']})"
            click.echo(f"  job {r['job'].ljust(width)}  {outcome}")
        click.echo(f"sent to {len(sent)} of {len(report)} job(s)")
    if not sent:
        _fail(f"no live job of sweep {sweep} took the command")


def _describe_op(op: Op) -> str:
    parts = [op.op, op.id]
    if op.target is not None:
        parts.append(op.target.describe())
    items = {**op.init, **op.params}
    parts += [f"{k}={json.dumps(v)}" for k, v in items.items()]
    if op.enabled is False:
        parts.append("(disabled)")
    return " ".join(parts)


def _assignments(items: Sequence[str], what: str) -> dict[str, Any]:
    try:
        return parse_assignments(items)
    except CommandError as exc:
        _fail(f"{what}: {exc}")


def _allowed_factories(ctx: _Ctx) -> list[str]:
    """The ``allowed_factories`` of the run (or of the sweep's jobs), from their state."""
    sweep = ctx.sweep_dir()
    if sweep is not None:
        from hotcb.sweep import sweep_jobs

        states: list[Any] = [job.state for job in sweep_jobs(sweep)]
    else:
        states = [read_state(ctx.run_dir(read_only=False).state)]
    allowed = [s.get("allowed_factories") for s in states if isinstance(s, dict)]
    return [name for names in allowed if isinstance(names, list) for name in names]


def _check_target(ctx: _Ctx, target: dict[str, str]) -> str:
    """Refuse a target that provably breaks the target rule, reading its source only
    (the CLI never imports the user's module). Returns a note when it cannot tell."""
    from hotcb.modules.cb.static_target import check_file_target, check_module_target

    allowed = _allowed_factories(ctx)
    path, symbol = target["path"], target["symbol"]
    if target["kind"] == "module":
        verdict = check_module_target(path, symbol, allowed_factories=allowed)
    else:
        if not Path(path).is_file():
            _fail(f"file not found: {path}")
        try:
            verdict = check_file_target(path, symbol, allowed_factories=allowed)
        except SyntaxError as exc:
            col = f", column {exc.offset}" if exc.offset else ""
            _fail(f"syntax error in {path} line {exc.lineno}{col}: {exc.msg}")
        except (OSError, ValueError) as exc:
            _fail(f"cannot read {path}: {exc}")
    if verdict.verdict == "refused":
        _fail(f"{verdict.reason}; nothing was queued")
    if verdict.verdict == "unknown":
        return f" (not checked here: {verdict.reason}; the run checks it before calling it)"
    return ""


@cb.command("load")
@click.argument("cb_id", metavar="ID")
@click.option(
    "--path", "module_path", metavar="MODULE", help="Dotted module path of the callback class."
)
@click.option(
    "--file", "file_path", metavar="FILE.py", help="A .py file defining the callback class."
)
@click.option(
    "--symbol", required=True, metavar="NAME", help="The callback class (or marked factory)."
)
@click.option(
    "--init", "init", multiple=True, metavar="K=V", help="Constructor kwarg (repeatable)."
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="K=V",
    help="Hot param set after construction (repeatable).",
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
@click.option(
    "--force",
    is_flag=True,
    help="Skip the up-front check of the target (the run still checks it before calling it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
@pass_ctx
def cb_load(
    ctx: _Ctx,
    cb_id: str,
    module_path: str | None,
    file_path: str | None,
    symbol: str,
    init: tuple[str, ...],
    params: tuple[str, ...],
    timeout: float | None,
    disabled: bool,
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
        _fail("give exactly one of --path MODULE or --file FILE.py")
    if file_path is not None:
        resolved = Path(file_path).expanduser().resolve()
        if not force:  # checked as given: the trust check walks its symlinks itself
            refused = check_source_file(Path(file_path).expanduser().absolute())
            if refused is not None:
                _fail(refused)
        target = {"kind": "python_file", "path": str(resolved), "symbol": symbol}
    else:
        assert module_path is not None
        target = {"kind": "module", "path": module_path, "symbol": symbol}
    data: dict[str, Any] = {"op": "load", "id": cb_id, "target": target}
    try:
        Op.from_dict(data)  # a bad id or symbol is reported before the target is looked at
    except CommandError as exc:
        _fail(str(exc))
    note = "" if force else _check_target(ctx, target)
    if init:
        data["init"] = _assignments(init, "--init")
    if params:
        data["params"] = _assignments(params, "--param")
    if timeout is not None:
        if TIMEOUT_KEY in data.get("init", {}):
            _fail(f"give the budget once: --timeout SECONDS or --init {TIMEOUT_KEY}=SECONDS")
        data.setdefault("init", {})[TIMEOUT_KEY] = timeout
    if disabled:
        data["enabled"] = False
    _send(ctx, data, as_json, note=note)


def _set(ctx: _Ctx, cb_id: str, assignments: tuple[str, ...], force: bool, as_json: bool) -> None:
    if not assignments:
        _fail(f"nothing to set: give name=value pairs, e.g. hotcb cb set {cb_id} every=5")
    params = _assignments(assignments, "set")
    _send(ctx, {"op": "set", "id": cb_id, "params": params}, as_json, check_id=cb_id, force=force)


@cb.command("set")
@click.argument("cb_id", metavar="ID")
@click.argument("assignments", nargs=-1, metavar="K=V...")
@click.option("--force", is_flag=True, help="Queue even if ID is not in the run's state.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
@pass_ctx
def cb_set(ctx: _Ctx, cb_id: str, assignments: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Set hot params of ID. Values are YAML scalars: every=5 lr=3e-4 on=true tags=[a,b]."""
    _set(ctx, cb_id, assignments, force, as_json)


@cb.command("set_params", hidden=True)
@click.argument("cb_id", metavar="ID")
@click.argument("assignments", nargs=-1, metavar="K=V...")
@click.option("--force", is_flag=True, help="Queue even if ID is not in the run's state.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
@pass_ctx
def cb_set_params(
    ctx: _Ctx, cb_id: str, assignments: tuple[str, ...], force: bool, as_json: bool
) -> None:
    """Alias of `hotcb cb set`."""
    _set(ctx, cb_id, assignments, force, as_json)


def _simple(op: str, doc: str) -> None:
    @cb.command(op, help=doc)
    @click.argument("cb_id", metavar="ID")
    @click.option("--force", is_flag=True, help="Queue even if ID is not in the run's state.")
    @click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
    @pass_ctx
    def command(ctx: _Ctx, cb_id: str, force: bool, as_json: bool) -> None:
        _send(ctx, {"op": op, "id": cb_id}, as_json, check_id=cb_id, force=force)


_simple("enable", "Enable callback ID (also re-enables one that was auto-disabled after an error).")
_simple("disable", "Disable callback ID (it stays loaded and keeps its params).")
_simple("unload", "Unload callback ID (its close() is called).")


# -- read-only commands -------------------------------------------------------------------


def _pending(rd: RunDir, entries: list[LedgerEntry]) -> int:
    """Complete command lines the run has not processed yet."""
    offset = max((e.offset for e in entries if e.offset is not None), default=0)
    try:  # a FIFO or a symlink there is refused, not waited on or followed
        with os.fdopen(open_regular(rd.commands, os.O_RDONLY), "rb") as fh:
            fh.seek(offset)
            tail = fh.read()
    except OSError:
        return 0
    return sum(1 for line in tail.split(b"\n")[:-1] if line.strip())


@cli.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {run_dir, live, step, callbacks, stuck} as JSON.",
)
@pass_ctx
def status(ctx: _Ctx, as_json: bool) -> None:
    """Show the run's callbacks: enabled, target, effective params, last error, and any
    callback call stuck past its _timeout_ (with its stack).

    For a Hydra sweep (--sweep, or when the latest run was a sweep job): one line per job.
    """
    sweep = ctx.sweep_dir()
    if sweep is None and ctx.explicit is None and not os.environ.get("HOTCB_RUN_DIR"):
        from hotcb.sweep import latest_sweep

        sweep = latest_sweep()
    if sweep is not None:
        _sweep_status(sweep, as_json)
        return
    rd = ctx.run_dir(read_only=True)
    state = read_state(rd.state)
    if state is None:
        _fail(f"{rd.path} has no {rd.state.name}: no run has used this dir yet")
    live = is_live(state)
    callbacks = state.get("callbacks") or {}
    warnings = [str(w) for w in state.get("warnings") or []]
    stuck = _stuck_calls(rd, state, live)
    if as_json:
        shown: dict[str, Any] = {
            "run_dir": str(rd.path),
            "live": live,
            "step": state.get("step"),
            "callbacks": callbacks,
            "stuck": [c.to_dict() for c in stuck],
        }
        if warnings:
            shown["warnings"] = warnings
        click.echo(json.dumps(shown, indent=2))
        return
    for warning in warnings:
        click.echo(f"hotcb: warning: {warning}", err=True)
    read = _read_ledger(rd)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    where = f"live, pid {state.get('pid')}" if live else "not live"
    world = f", world size {state['world_size']}" if state.get("world_size", 1) > 1 else ""
    click.echo(f"run {rd.path} ({where}, step {state.get('step')}{world})")
    for call in stuck:
        _echo_stuck(call, live)
    pending = _pending(rd, read.entries)
    if pending:
        click.echo(f"{pending} command(s) queued, not applied yet")
    if not callbacks:
        click.echo("no callbacks loaded")
        return
    rows = [("ID", "ENABLED", "TARGET", "PARAMS", "ERROR")]
    for cb_id, rec in sorted(callbacks.items()):
        target = rec.get("target") or {}
        params = " ".join(f"{k}={json.dumps(v)}" for k, v in (rec.get("params") or {}).items())
        rows.append(
            (
                cb_id,
                "yes" if rec.get("enabled") else "no",
                f"{target.get('path')}:{target.get('symbol')}",
                params,
                rec.get("error") or "",
            )
        )
    _echo_table(rows)


def _stuck_calls(rd: RunDir, state: dict[str, Any], live: bool) -> list[StuckCall]:
    """The calls the run's watchdog reports stuck (from this run's process only); while it
    is live, with how long they have run by now."""
    report = read_stuck(rd.stuck)
    if report is None or report.pid != state.get("pid") or report.host != state.get("host"):
        return []
    if not live:
        return list(report.calls)
    now = time.time()
    return [replace(c, seconds=max(c.seconds, now - c.since)) for c in report.calls]


def _echo_stuck(call: StuckCall, live: bool) -> None:
    rank = f" on rank {call.rank}" if call.rank else ""
    at = f", since step {call.step}" if call.step is not None else ""
    if live:
        head = f"STUCK: {call.id} {call.where()}{rank} has run {call.seconds:.1f} s"
        tail = "; hotcb cannot stop it. Its stack:"
    else:
        head = (
            f"STUCK when the run ended: {call.id} {call.where()}{rank} had run {call.seconds:.1f} s"
        )
        tail = ". Its stack:"
    click.echo(f"{head} (budget {call.budget:g} s{at}){tail}")
    for frame in call.stack or ("(no Python frames)",):
        click.echo("    " + frame.replace("\n", "\n    "))


def _echo_table(rows: Sequence[Sequence[str]]) -> None:
    """Print rows in aligned columns; the last column is free text, not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo(
            "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        )


def _sweep_status(sweep: Path, as_json: bool) -> None:
    from hotcb.sweep import sweep_jobs

    jobs = sweep_jobs(sweep)
    rows: list[dict[str, Any]] = []
    for job in jobs:
        try:
            launch = json.loads((job.run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            launch = {}
        rows.append(
            {
                "job": job.name,
                "run_dir": str(job.run_dir),
                "live": job.live,
                "step": job.state.get("step"),
                "overrides": list(launch.get("overrides") or []),
                "callbacks": job.state.get("callbacks") or {},
            }
        )
    if as_json:
        click.echo(json.dumps({"sweep_dir": str(sweep), "jobs": rows}, indent=2))
        return
    live = sum(1 for r in rows if r["live"])
    click.echo(f"sweep {sweep} ({len(rows)} job(s), {live} live)")
    if not rows:
        return
    table = [("JOB", "LIVE", "STEP", "OVERRIDES", "CALLBACKS")]
    for r in rows:
        callbacks = ", ".join(
            cb_id
            + ("" if rec.get("enabled") else " (off)")
            + "".join(f" {k}={json.dumps(v)}" for k, v in (rec.get("params") or {}).items())
            for cb_id, rec in sorted(r["callbacks"].items())
        )
        overrides = " ".join(o for o in r["overrides"] if not o.startswith("hotcb"))
        table.append((r["job"], "yes" if r["live"] else "no", str(r["step"]), overrides, callbacks))
    _echo_table(table)


def _format_entry(e: LedgerEntry) -> str:
    try:
        when = time.strftime("%H:%M:%S", time.localtime(e.wall_time))
    except (OverflowError, OSError, ValueError):  # a finite time the platform cannot show
        when = "??:??:??"
    payload = dict(e.payload)
    detail = " ".join(f"{k}={json.dumps(v)}" for k, v in (payload.get("params") or {}).items())
    if e.op == "load" and isinstance(payload.get("target"), dict):
        detail = (
            f"{payload['target'].get('path')}:{payload['target'].get('symbol')} {detail}".strip()
        )
    line = f"#{e.seq:<4} {when} step={e.step!s:<6} {e.source:<8} {e.op:<7} {e.id or '-':<12} {e.decision}"
    if detail:
        line += f"  {detail}"
    if e.error:
        line += f"  error: {e.error}"
    return line


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per ledger entry.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries (Ctrl-C to stop).")
@click.option("-n", "last", type=int, default=None, help="Only the last N entries.")
@click.option(
    "--max-wait",
    type=float,
    default=None,
    hidden=True,
    help="With --follow: stop after this many seconds.",
)
@pass_ctx
def log(ctx: _Ctx, as_json: bool, follow: bool, last: int | None, max_wait: float | None) -> None:
    """Show the ledger: every processed command with its step, source and decision."""
    rd = ctx.run_dir(read_only=True)
    read = _read_ledger(rd)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    entries = read.entries[-last:] if last else read.entries

    def show(batch: list[LedgerEntry]) -> None:
        for e in batch:
            click.echo(json.dumps(e.to_dict()) if as_json else _format_entry(e))

    show(entries)
    if not follow:
        return
    seen = read.entries[-1].seq if read.entries else 0
    deadline = time.monotonic() + max_wait if max_wait is not None else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            new = [e for e in _read_ledger(rd).entries if e.seq > seen]
            if new:
                show(new)
                seen = new[-1].seq
            elif not is_live(read_state(rd.state)):
                break
    except KeyboardInterrupt:
        pass


@cli.command("export-config")
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
@click.option("--json", "as_json", is_flag=True, help="Print {path, next_command, text} as JSON.")
@pass_ctx
def export_config(
    ctx: _Ctx, name: str | None, out: str | None, fmt: str, force: bool, as_json: bool
) -> None:
    """Turn the run's live changes into Hydra config for the next run.

    Writes a new file (mode 0600) and refuses to overwrite one unless --force. The
    default form (into the app's config dir) is only for your own runs; another user's
    run can be read with --format overrides or written to --out FILE.
    """
    rd = ctx.run_dir(read_only=True)
    from hotcb.hydra.export import ExportError
    from hotcb.hydra.export import export_config as do_export

    try:
        result = do_export(rd.path, name=name, out=out, fmt=fmt, force=force)
    except ExportError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(result.path) if result.path else None,
                    "next_command": result.next_command,
                    "text": result.text,
                }
            )
        )
        return
    if fmt == "overrides":
        click.echo(result.text)
        return
    click.echo(f"wrote {result.path}")
    if result.next_command:
        click.echo(f"next run: {result.next_command}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def runs(as_json: bool) -> None:
    """List this user's live runs and the most recent ended ones."""
    live = live_runs()
    recent = recent_runs()[:10]
    if as_json:
        click.echo(
            json.dumps({"live": [vars(r) for r in live], "recent": [vars(r) for r in recent]})
        )
        return
    click.echo("live:" if live else "live: none")
    for r in live:
        click.echo(f"  {r.describe()}")
    if recent:
        click.echo("recent:")
        for r in recent:
            click.echo(f"  {r.describe()}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``hotcb``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="hotcb")


if __name__ == "__main__":  # pragma: no cover
    main()
