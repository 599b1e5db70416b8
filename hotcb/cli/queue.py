"""Queue one validated command to a run, or to every live job of a sweep: one path for both.

The command is validated once (:func:`validate`), then each run it goes to passes the same
checks (:func:`refusal`: the run dir is yours, the run would read its commands file, the
callback id is known) before one locked append to its ``hotcb.commands.jsonl``. A single
run that refuses is a user error; a sweep lists each job's answer or why it was skipped.

Then the command waits for the run's answer (:mod:`hotcb.cli.answer`): ``applied at step
N`` exits 0; a failure, or no answer in time, exits 1 saying why. ``--dry-run`` stops
after the checks and shows the override delta the command would add.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from hotcb.cli.answer import AnswerOptions, LedgerTail, Pending, unwaited, wait_for_answers
from hotcb.cli.app import RunSelection, fail
from hotcb.freeze import KERNEL_MODULE, frozen_mode
from hotcb.hotparams import HotParam, ParamError, check_values
from hotcb.ops import CommandError, Op
from hotcb.rundir import RunDir
from hotcb.state import read_state
from hotcb.stream import CommandStream
from hotcb.trust import check_control_file, foreign_owner
from hotcb.watchdog import TIMEOUT_KEY, parse_timeout

__all__ = [
    "Refusal",
    "check_declared",
    "declaration",
    "describe_op",
    "known_ids",
    "refusal",
    "send",
    "validate",
]


@dataclass(frozen=True)
class Refusal:
    """Why a run does not take a command: ``message`` as the error of a single run,
    ``short`` as the reason on a sweep job's row."""

    message: str
    short: str


def validate(data: dict[str, Any]) -> Op:
    """The command ``data`` as an :class:`~hotcb.ops.Op`, with the reserved keys checked
    (``_timeout_``); a :class:`~hotcb.cli.app.UserError` if it is not valid."""
    for part in ("init", "params"):
        kwargs = data.get(part) or {}
        if TIMEOUT_KEY in kwargs:
            try:
                parse_timeout(kwargs[TIMEOUT_KEY])
            except ValueError as exc:
                fail(f"{exc}; nothing was queued")
    try:
        return Op.from_dict(data)
    except CommandError as exc:
        fail(exc.message, **exc.location)


def known_ids(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The callbacks of a run's state snapshot by id (None: the run has no state yet)."""
    if state is None:
        return None
    callbacks = state.get("callbacks")
    return callbacks if isinstance(callbacks, dict) else {}


def refusal(
    run: RunDir, state: dict[str, Any] | None, check_id: str | None, force: bool
) -> Refusal | None:
    """Why ``run`` (whose state is ``state``) must not be sent a command, or None if it may.

    ``check_id``: the callback id the command is about, checked against the state (unless
    ``force``).
    """
    owner = foreign_owner(run.path)
    if owner is not None:
        return Refusal(
            f"run dir {run.path} belongs to {owner}, not to you (uid {os.geteuid()}): hotcb "
            "writes commands only to your own runs (reading it with status or log is fine)",
            f"run of {owner}, not yours",
        )
    refused = check_control_file(run.commands).refused
    if refused is not None:
        return Refusal(f"{refused} (the run would not read commands from it)", refused)
    if check_id is None or force:
        return None
    known = known_ids(state)
    if known is None:
        return Refusal(
            f"{run.path} has no {run.state.name}: no run has used this dir yet "
            "(check --dir, or queue anyway with --force)",
            f"no {run.state.name}",
        )
    if check_id not in known:
        names = ", ".join(sorted(known)) or "none"
        return Refusal(
            f"unknown callback id {check_id!r}; known ids: {names} (queue anyway with --force)",
            f"unknown id {check_id!r}",
        )
    return None


def declaration(record: Any) -> list[HotParam] | None:
    """The hot parameters a callback's state record declares (None: it declares none, or
    the run is older than declarations)."""
    declared = record.get("hot_params") if isinstance(record, dict) else None
    if not isinstance(declared, list):
        return None
    try:
        return [HotParam.from_dict(d) for d in declared if isinstance(d, dict)]
    except (TypeError, ValueError):
        return None


def check_declared(op: Op, state: dict[str, Any] | None) -> Op:
    """A ``set`` op with its values checked and converted against the callback's
    declaration in ``state`` (what the run checks again); a :class:`ParamError` saying
    what is wrong. Ops of other kinds, and callbacks that declare nothing, pass as they are."""
    if op.op != "set":
        return op
    declared = declaration((known_ids(state) or {}).get(op.id))
    if declared is None:
        return op
    return replace(op, params=check_values(op.id, declared, op.params))


def _append(run: RunDir, op: Op) -> int | Refusal:
    """Append ``op`` to the run's commands; the offset past its line, or why it could not."""
    try:
        return CommandStream(run.commands).append(op)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Refusal(f"cannot append to {run.commands}: {reason}", f"cannot append: {reason}")


def _frozen(state: dict[str, Any] | None, op: Op) -> Refusal | None:
    """Why a frozen run ignores ``op`` (None: it is not frozen, or ``op`` is ``freeze``).
    A single run is sent it all the same (it records it as ``ignored``); a sweep job is
    skipped."""
    mode = frozen_mode(state)
    if mode is None or op.module == KERNEL_MODULE:
        return None
    return Refusal(
        f"frozen (freeze: {mode}): it records {describe_op(op)} as ignored and changes "
        "nothing; `hotcb freeze --mode off` lets changes in again",
        f"frozen: freeze {mode}",
    )


def describe_op(op: Op) -> str:
    """The op as ``hotcb log`` and the confirmations show it: ``set heartbeat every=5``."""
    parts = [op.op, op.id]
    if op.target is not None:
        parts.append(op.target.describe())
    items = {**op.init, **op.params}
    parts += [f"{k}={json.dumps(v)}" for k, v in items.items()]
    if op.enabled is False:
        parts.append("(disabled)")
    return " ".join(parts)


def send(
    selection: RunSelection,
    data: dict[str, Any],
    as_json: bool,
    *,
    check_id: str | None = None,
    force: bool = False,
    note: str = "",
) -> None:
    """Validate ``data`` and queue it to the selected run, or with ``--sweep`` to every
    live job of the sweep; print what was queued where (``as_json``: as JSON).

    ``check_id``: refuse a run whose state does not know this callback id (unless
    ``force``). ``note`` is added to the confirmation.
    """
    op = validate(data)
    sweep = selection.sweep_dir()
    if sweep is None:
        _send_to_run(selection.run_dir(read_only=False), op, as_json, check_id, force, note)
    else:
        _send_to_sweep(sweep, op, as_json, check_id, force, note)


def _send_to_run(
    run: RunDir, op: Op, as_json: bool, check_id: str | None, force: bool, note: str
) -> None:
    state = read_state(run.state)
    problem = refusal(run, state, check_id, force)
    if problem is None and not force:
        try:
            op = check_declared(op, state)
        except ParamError as exc:
            fail(f"{exc}; nothing was queued (see: hotcb cb describe {op.id})")
    if problem is not None:
        fail(problem.message)
    if op.op == "load" and op.id in (known_ids(state) or {}):
        note = f" (replaces the loaded {op.id!r}){note}"
    options = AnswerOptions.current()
    if options.dry_run:
        _dry_run(run, op, as_json, note)
        return
    answer = unwaited(run, state, options)
    tail = LedgerTail(run.ledger)
    appended = _append(run, op)
    if isinstance(appended, Refusal):
        fail(appended.message)
    frozen = _frozen(state, op)
    if frozen is not None:  # queued all the same: the run records it as ignored
        fail(f"run {run.path} is {frozen.message}")
    if answer is None:
        answer = wait_for_answers([Pending(run, appended, tail)], options.timeout)[0]
    shown = describe_op(op)
    if as_json:
        out = {"queued": op.to_dict(), "run_dir": str(run.path), "answer": answer.to_dict()}
        click.echo(json.dumps(out))
    if answer.outcome == "failed":
        fail(f"{shown} {answer.describe()}")
    if answer.outcome == "unanswered":
        fail(f"{shown}: {answer.note}")
    if as_json:
        return
    if answer.outcome == "queued":
        click.echo(f"queued {shown} -> {run.path} ({answer.note}){note}")
    else:
        why = f" ({answer.error})" if answer.error else ""
        click.echo(f"{answer.outcome} at step {answer.step}: {shown} -> {run.path}{why}{note}")


def _dry_run(run: RunDir, op: Op, as_json: bool, note: str) -> None:
    """Show what ``op`` would do to ``run``: the op and the override delta; queue nothing."""
    from hotcb.cli.dry_run import run_deltas
    from hotcb.hydra.deltas import DeltaError

    try:
        deltas = run_deltas(run.path, op)
    except DeltaError as exc:
        fail(f"dry run: {exc.message}", **exc.location)
    if as_json:
        out = {"dry_run": op.to_dict(), "run_dir": str(run.path), "deltas": deltas}
        click.echo(json.dumps(out))
        return
    click.echo(f"dry run (nothing queued): {describe_op(op)} -> {run.path}{note}")
    click.echo(f"override delta: {' '.join(deltas) if deltas else '(none)'}")


def _declared_refusal(op: Op, state: dict[str, Any] | None) -> Refusal | None:
    try:
        check_declared(op, state)
    except ParamError as exc:
        return Refusal(str(exc), str(exc))
    return None


def _send_to_sweep(
    sweep: Path, op: Op, as_json: bool, check_id: str | None, force: bool, note: str
) -> None:
    from hotcb.sweep import sweep_jobs

    jobs = sweep_jobs(sweep)
    if not jobs:
        fail(f"sweep {sweep} has no hotcb jobs yet (no {RunDir(sweep).state.name} below it)")
    options = AnswerOptions.current()
    report: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], Pending]] = []
    for job in jobs:
        run = RunDir(job.run_dir)
        problem = (
            Refusal("not live", "not live")
            if not job.live
            else refusal(run, job.state, check_id, force)
            or _frozen(job.state, op)  # a frozen job is skipped: it would ignore it
            or (None if force else _declared_refusal(op, job.state))
        )
        row: dict[str, Any] = {"job": job.name, "run_dir": str(job.run_dir), "live": job.live}
        answer = None
        if problem is None and not options.dry_run:
            answer = unwaited(run, job.state, options)
            tail = LedgerTail(run.ledger)
            appended = _append(run, op)
            if isinstance(appended, Refusal):
                problem = appended
            elif answer is None:
                pending.append((row, Pending(run, appended, tail)))
        row["queued"] = problem is None and not options.dry_run
        row["reason"] = problem.short if problem is not None else None
        row["answer"] = answer
        report.append(row)
    answers = wait_for_answers([p for _, p in pending], options.timeout) if pending else []
    for (row, _), answer in zip(pending, answers, strict=True):
        row["answer"] = answer
    sent = [r for r in report if r["queued"]]
    bad = [r for r in sent if r["answer"] is not None and r["answer"].failed]
    if as_json:
        jobs_out = [
            {**r, "answer": r["answer"].to_dict() if r["answer"] is not None else None}
            for r in report
        ]
        key = "dry_run" if options.dry_run else "queued"
        click.echo(json.dumps({key: op.to_dict(), "sweep_dir": str(sweep), "jobs": jobs_out}))
    else:
        head = "dry run (nothing queued): " if options.dry_run else ""
        click.echo(f"sweep {sweep}: {head}{describe_op(op)}{note}")
        width = max(len(r["job"]) for r in report)
        for r in report:
            if r["reason"] is not None:
                outcome = f"skipped ({r['reason']})"
            elif options.dry_run:
                outcome = "would take it"
            else:
                outcome = r["answer"].describe()
            click.echo(f"  job {r['job'].ljust(width)}  {outcome}")
        if not options.dry_run:
            click.echo(f"sent to {len(sent)} of {len(report)} job(s)")
    if options.dry_run:
        return
    if not sent:
        fail(f"no live job of sweep {sweep} took the command")
    if bad:
        names = ", ".join(r["job"] for r in bad)
        fail(f"{len(bad)} of {len(sent)} job(s) did not apply it: {names}")
