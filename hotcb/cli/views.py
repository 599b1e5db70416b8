"""The views: ``hotcb status``, ``hotcb log`` and ``hotcb runs``. They read the run dir's
files (and the registry of runs) and never touch the training process.

``hotcb log`` shows an entry's error with its location (the ledger's ``location``: file,
line, key, target), a file inside the run dir by its name.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from hotcb.cli.app import RunSelection, fail, pass_selection
from hotcb.cli.table import MIN_WIDTH, echo_table, shorten, terminal_width
from hotcb.defaults import DEFAULT_MODULE
from hotcb.errors import format_error
from hotcb.files import NotRegularFileError, open_regular
from hotcb.ledger import LedgerEntry, LedgerRead, read_ledger
from hotcb.rundir import RunDir, read_launch
from hotcb.runs import numbered_runs
from hotcb.state import is_live, read_state
from hotcb.watchdog import StuckCall, read_stuck

__all__ = ["effective_params", "format_entry", "log", "progress", "runs", "status"]


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
    help="Print {run_dir, live, step, updated, callbacks, costs, stuck} as JSON.",
)
@click.option(
    "--watch",
    "-w",
    "watch",
    is_flag=True,
    help="Keep the view on screen, refreshed in place, until Ctrl-C (exit code 0).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: seconds between refreshes.",
)
@pass_selection
def status(selection: RunSelection, as_json: bool, watch: bool, interval: float) -> None:
    """Show the run's callbacks: enabled, target, what each costs per call (sampled),
    effective params (defaults included), last error, and any callback call stuck past
    its _timeout_ (with its stack); whether the run is live and when it was last seen.

    For a Hydra sweep (--sweep, or when the latest run was a sweep job): one line per job.
    """
    if watch:
        if as_json:
            fail("give --watch or --json, not both")
        from hotcb.cli.watch import watch_status

        watch_status(lambda: _status_once(selection, as_json=False), interval)
        return
    _status_once(selection, as_json)


def _status_once(selection: RunSelection, as_json: bool) -> None:
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
    costs = (state.get("costs") or {}).get(DEFAULT_MODULE) or {}
    warnings = [str(w) for w in state.get("warnings") or []]
    stuck = _stuck_calls(rd, state, live)
    if as_json:
        shown: dict[str, Any] = {
            "run_dir": str(rd.path),
            "live": live,
            "step": state.get("step"),
            "callbacks": callbacks,
            "stuck": [c.to_dict() for c in stuck],
            "costs": costs,
            "updated": state.get("updated"),
        }
        if warnings:
            shown["warnings"] = warnings
        if state.get("schedule"):
            shown["schedule"] = state["schedule"]
        if state.get("freeze", "off") != "off":
            shown["freeze"] = state["freeze"]
        click.echo(json.dumps(shown, indent=2))
        return
    for warning in warnings:
        click.echo(f"hotcb: warning: {warning}", err=True)
    read = _read_ledger(rd)
    for warning in read.warnings():
        click.echo(f"hotcb: warning: {warning}", err=True)
    world = f", world size {state['world_size']}" if state.get("world_size", 1) > 1 else ""
    if state.get("freeze", "off") != "off":
        world += f", frozen: {state['freeze']}"
    click.echo(f"run {rd.path} ({progress(state, live, time.time())}{world})")
    for call in stuck:
        _echo_stuck(call, live)
    pending = _pending(rd, read.entries)
    if pending:
        click.echo(f"{pending} command(s) queued, not applied yet")
    _echo_schedule(state.get("schedule"))
    if not callbacks:
        click.echo("no callbacks loaded")
        return
    rows = [("ID", "ENABLED", "TARGET", "US/CALL", "MAX US", "PARAMS")]
    for cb_id, rec in sorted(callbacks.items()):
        target = rec.get("target") or {}
        cost = costs.get(cb_id) if isinstance(costs.get(cb_id), dict) else None
        rows.append(
            (
                cb_id,
                "yes" if rec.get("enabled") else "no",
                f"{target.get('path')}:{target.get('symbol')}",
                f"{cost['mean_us']:.1f}" if cost else "-",
                f"{cost['max_us']:.1f}" if cost else "-",
                " ".join(f"{k}={json.dumps(v)}" for k, v in effective_params(rec).items()),
            )
        )
    echo_table(rows, shrink=2)
    for cb_id, rec in sorted(callbacks.items()):
        if rec.get("error"):
            click.echo(f"{cb_id}: last error: {rec['error']}")


#: A live run whose state was not rewritten for longer is "stalled": the state is rewritten
#: about every second (``state_interval``) while the loop reaches safe points.
STALLED_AFTER = 5.0


def progress(state: dict[str, Any], live: bool, now: float) -> str:
    """Where the run is, for the status line: ``live, pid 4121, step 322, seen 0.4 s
    ago``, ``..., stalled 45 s`` (live, but no safe point for that long: a long validation,
    or a hang) or ``not live, step 322``.

    >>> progress({"pid": 7, "step": 3, "updated": 100.0}, True, 100.4)
    'live, pid 7, step 3, seen 0.4 s ago'
    >>> progress({"pid": 7, "step": 3, "updated": 100.0}, True, 145.0)
    'live, pid 7, step 3, stalled 45 s (no safe point reached since)'
    """
    step = state.get("step")
    if not live:
        return f"not live, step {step}"
    head = f"live, pid {state.get('pid')}, step {step}"
    updated = state.get("updated")
    if not isinstance(updated, (int, float)):
        return head
    age = max(0.0, now - updated)
    if age > STALLED_AFTER:
        return f"{head}, stalled {age:.0f} s (no safe point reached since)"
    return f"{head}, seen {age:.1f} s ago"


def effective_params(record: dict[str, Any]) -> dict[str, Any]:
    """A callback's effective params: its declared hot params with their current values
    (defaults included), then whatever else it was given (init args, undeclared params).

    >>> effective_params({"params": {"every": 5, "path": "m.jsonl"},
    ...                   "hot_params": [{"name": "every", "value": 5}, {"name": "keys", "value": []}]})
    {'every': 5, 'keys': [], 'path': 'm.jsonl'}
    """
    out: dict[str, Any] = {}
    declared = record.get("hot_params")
    if isinstance(declared, list):
        out = {p["name"]: p.get("value") for p in declared if isinstance(p, dict) and "name" in p}
    for key, value in (record.get("params") or {}).items():
        out.setdefault(key, value)
    return out


def _describe_due(due: Mapping[str, Any]) -> str:
    params = " ".join(f"{k}={json.dumps(v)}" for k, v in (due.get("params") or {}).items())
    event = due.get("event")
    at = f"step {due.get('step')}" + (f" {event}" if event and event != "*" else "")
    key = f" [{due['key']}]" if due.get("key") else ""
    return f"{at}: {due.get('op')} {due.get('id')}{' ' + params if params else ''}{key}"


def _echo_schedule(schedule: Any) -> None:
    """The scheduled ops still to come, and those the run missed (``hotcb.state.json``)."""
    if not isinstance(schedule, Mapping):
        return
    pending, missed = schedule.get("pending") or [], schedule.get("missed") or []
    count, missed_count = schedule.get("pending_count", 0), schedule.get("missed_count", 0)
    if count:
        click.echo(f"{count} scheduled op(s) pending (policy {schedule.get('policy')}):")
        for due in pending:
            click.echo(f"  {_describe_due(due)}")
        if count > len(pending):
            click.echo(f"  ... and {count - len(pending)} more")
    if missed_count:
        click.echo(f"{missed_count} scheduled op(s) missed:")
        for due in missed:
            click.echo(f"  {_describe_due(due)}: {due.get('reason')}")
        if missed_count > len(missed):
            click.echo(f"  ... and {missed_count - len(missed)} more")


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
    echo_table(table)


def _shown_location(location: Mapping[str, Any] | None, run_dir: Path | None) -> dict[str, Any]:
    """``location`` with a path inside ``run_dir`` shortened to its name in the run dir."""
    shown = dict(location or {})
    path = shown.get("path")
    if run_dir is not None and isinstance(path, str) and Path(path).is_relative_to(run_dir):
        shown["path"] = Path(path).relative_to(run_dir).as_posix()
    return shown


def format_entry(
    e: LedgerEntry, run_dir: Path | None = None, *, id_width: int = 12, width: int | None = None
) -> str:
    """One ledger entry as one line of ``hotcb log``: seq, time, step, source, op, id
    (padded to ``id_width``), decision, params (a load's target), and the error with its
    location (a file inside ``run_dir`` by its name there). With ``width``, a load's long
    target is shortened to keep the line within it (the error is never cut)."""
    try:
        when = time.strftime("%H:%M:%S", time.localtime(e.wall_time))
    except (OverflowError, OSError, ValueError):  # a finite time the platform cannot show
        when = "??:??:??"
    payload = dict(e.payload)
    detail = " ".join(f"{k}={json.dumps(v)}" for k, v in (payload.get("params") or {}).items())
    line = (
        f"#{e.seq:<4} {when} step={e.step!s:<6} {e.source:<8} {e.op:<7} "
        f"{e.id or '-':<{id_width}} {e.decision}"
    )
    if e.op == "load" and isinstance(payload.get("target"), dict):
        target = f"{payload['target'].get('path')}:{payload['target'].get('symbol')}"
        if width is not None:
            target = shorten(target, max(2 * MIN_WIDTH, width - len(line) - len(detail) - 3))
        detail = f"{target} {detail}".strip()
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

    id_width = max([12, *(len(e.id or "-") for e in entries)])
    width = terminal_width()

    def show(batch: list[LedgerEntry]) -> None:
        for e in batch:
            if as_json:
                click.echo(json.dumps(e.to_dict()))
            else:
                click.echo(format_entry(e, rd.path, id_width=id_width, width=width))

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
    """List this user's live runs and the last active ended ones, numbered for --run N
    (hotcb --run 2 status). A run started from the current directory is marked "here"."""
    from hotcb.cli.liveness_view import run_progress

    numbered = numbered_runs()
    live = [r for r in numbered if r.closed is None]  # first: ended runs have their time
    here = os.getcwd()
    rows = []
    for number, r in enumerate(numbered, start=1):
        if number > len(live) + 10:
            break
        progress = run_progress(read_state(RunDir(r.run_dir).state))
        rows.append({**vars(r), "number": number, "here": r.started_in(here) > 0, "run": progress})
    if as_json:
        out = [{**row, "run": row["run"].to_dict()} for row in rows]
        click.echo(json.dumps({"live": out[: len(live)], "recent": out[len(live) :]}, default=str))
        return
    click.echo("live:" if live else "live: none")
    for i, row in enumerate(rows):
        if i == len(live):
            click.echo("recent:")
        entry = numbered[row["number"] - 1]
        mark = "  (here)" if row["here"] else ""
        click.echo(f"  {row['number']:>2}  {entry.describe()}: {row['run'].describe()}{mark}")
