"""The views: ``hotcb status``, ``hotcb log`` and ``hotcb runs``. They read the run dir's
files (and the registry of runs) and never touch the training process.

``hotcb log`` shows an entry's error with its location (the ledger's ``location``: file,
line, key, target), a file inside the run dir by its name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from hotcb.cli.app import RunSelection, fail, pass_selection
from hotcb.errors import format_error
from hotcb.files import NotRegularFileError, open_regular
from hotcb.ledger import LedgerEntry, LedgerRead, read_ledger
from hotcb.rundir import RunDir, read_launch
from hotcb.runs import live_runs, recent_runs
from hotcb.state import is_live, read_state
from hotcb.watchdog import StuckCall, read_stuck

__all__ = ["format_entry", "log", "runs", "status"]


def _read_ledger(rd: RunDir) -> LedgerRead:
    """The run's ledger; one clear error (not a hang, not a traceback) for a ledger that
    is a symlink, a FIFO or unreadable."""
    try:
        return read_ledger(rd.ledger)
    except NotRegularFileError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {rd.ledger}: {exc.strerror or exc}")


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


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print {run_dir, live, step, callbacks, stuck} as JSON.",
)
@pass_selection
def status(selection: RunSelection, as_json: bool) -> None:
    """Show the run's callbacks: enabled, target, effective params, last error, and any
    callback call stuck past its _timeout_ (with its stack).

    For a Hydra sweep (--sweep, or when the latest run was a sweep job): one line per job.
    """
    sweep = selection.sweep_dir()
    if sweep is None and not selection.chosen:
        from hotcb.sweep import latest_sweep

        sweep = latest_sweep()
    if sweep is not None:
        _sweep_status(sweep, as_json)
        return
    rd = selection.run_dir(read_only=True)
    state = read_state(rd.state)
    if state is None:
        fail(f"{rd.path} has no {rd.state.name}: no run has used this dir yet")
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
        if state.get("freeze", "off") != "off":
            shown["freeze"] = state["freeze"]
        click.echo(json.dumps(shown, indent=2))
        return
    for warning in warnings:
        click.echo(f"hotcb: warning: {warning}", err=True)
    read = _read_ledger(rd)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    where = f"live, pid {state.get('pid')}" if live else "not live"
    world = f", world size {state['world_size']}" if state.get("world_size", 1) > 1 else ""
    if state.get("freeze", "off") != "off":
        world += f", frozen: {state['freeze']}"
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
        launch = read_launch(RunDir(job.run_dir).launch)
        rows.append(
            {
                "job": job.name,
                "run_dir": str(job.run_dir),
                "live": job.live,
                "step": job.state.get("step"),
                "overrides": [str(o) for o in launch.get("overrides") or []],
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


def _shown_location(location: Mapping[str, Any] | None, run_dir: Path | None) -> dict[str, Any]:
    """``location`` with a path inside ``run_dir`` shortened to its name in the run dir."""
    shown = dict(location or {})
    path = shown.get("path")
    if run_dir is not None and isinstance(path, str) and Path(path).is_relative_to(run_dir):
        shown["path"] = Path(path).relative_to(run_dir).as_posix()
    return shown


def format_entry(e: LedgerEntry, run_dir: Path | None = None) -> str:
    """One ledger entry as one line of ``hotcb log``: seq, time, step, source, op, id,
    decision, params (a load's target), and the error with its location (a file inside
    ``run_dir`` by its name there)."""
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
        line += f"  error: {format_error(e.error, _shown_location(e.location, run_dir))}"
    return line


@click.command()
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
@pass_selection
def log(
    selection: RunSelection, as_json: bool, follow: bool, last: int | None, max_wait: float | None
) -> None:
    """Show the ledger: every processed command with its step, source and decision."""
    rd = selection.run_dir(read_only=True)
    read = _read_ledger(rd)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    entries = read.entries[-last:] if last else read.entries

    def show(batch: list[LedgerEntry]) -> None:
        for e in batch:
            click.echo(json.dumps(e.to_dict()) if as_json else format_entry(e, rd.path))

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


@click.command()
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
