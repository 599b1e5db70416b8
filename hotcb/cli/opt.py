"""``hotcb opt ...``: change the run's optimizer (``set``) and see its param groups (``show``).

``opt set`` checks the values here, and against the param groups the run last wrote to
``hotcb.state.json`` (a group that does not exist, ``betas`` on SGD), before anything is
queued; the CLI never imports torch. The run checks again and records a change it cannot
make as ``failed``, with the optimizer unchanged. See docs/opt-loss.md.

The queueing side is imported when a command runs, not when the group is built.
"""

from __future__ import annotations

import json
from typing import Any

import click

from hotcb.cli.answer import answer_options
from hotcb.cli.app import HotcbGroup, RunSelection, fail, pass_selection
from hotcb.state import read_state

__all__ = ["module_section", "opt"]

#: The ``module`` field of opt commands and its section of ``hotcb.state.json``.
MODULE, SECTION = "opt", "optimizer"


@click.group(cls=HotcbGroup)
def opt() -> None:
    """Change the run's optimizer: lr, weight_decay, momentum, betas, clip_norm."""


def module_section(
    selection: RunSelection, module: str, section: str, *, read_only: bool
) -> dict[str, Any] | None:
    """The run's ``section`` of ``hotcb.state.json`` (None: no state yet, or a sweep);
    a user error if the run's kernel does not run ``module``."""
    if selection.sweep_dir() is not None:
        return None
    state = read_state(selection.run_dir(read_only=read_only).state)
    if state is None:
        return None
    if module not in (state.get("modules") or []):
        fail(
            f"this run has no {module} module (its modules: "
            f"{', '.join(state.get('modules') or []) or 'none'}): add hotcb.{module} to its "
            "config (docs/opt-loss.md), or pass --force"
        )
    found = state.get(section)
    return found if isinstance(found, dict) else None


@opt.command("set")
@answer_options()
@click.argument("assignments", nargs=-1, metavar="K=V...")
@click.option("--force", is_flag=True, help="Skip the checks against the run's state.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
@pass_selection
def opt_set(
    selection: RunSelection, assignments: tuple[str, ...], force: bool, as_json: bool
) -> None:
    """Set optimizer values in every param group (or group=N), applied at the next safe point.

    Values: lr, lr_scale (multiplies lr), weight_decay, momentum, betas=[b1,b2],
    clip_norm (applied at after_backward; null turns it off); a list gives one value per
    group (lr=[1e-3,1e-4]). Under an LR scheduler, lr rescales the schedule so it
    continues from the new value.

    \b
    hotcb opt set lr=1e-4
    hotcb opt set lr_scale=0.5
    hotcb opt set group=1 weight_decay=0.01
    hotcb opt set clip_norm=1.0
    """
    if not assignments:
        fail("nothing to set: give name=value pairs, e.g. hotcb opt set lr=1e-4")
    from hotcb.cli.queue import send
    from hotcb.modules.opt.module import OPT_OPS
    from hotcb.modules.opt.params import OPT_ID, check_values, plan
    from hotcb.ops import CommandError, parse_assignments, register_ops

    try:
        params = parse_assignments(assignments)
    except CommandError as exc:
        fail(f"set: {exc}")
    try:
        group, values = check_values(params)
        section = None if force else module_section(selection, MODULE, SECTION, read_only=False)
        groups = (section or {}).get("groups") or []
        if groups:
            plan(group, values, groups)
    except ValueError as exc:
        fail(f"{exc}; nothing was queued")
    register_ops(MODULE, OPT_OPS)
    send(selection, {"module": MODULE, "op": "set", "id": OPT_ID, "params": params}, as_json)


@opt.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the run's optimizer section as JSON.")
@pass_selection
def opt_show(selection: RunSelection, as_json: bool) -> None:
    """Print every param group's current values (as the run last wrote them)."""
    section = module_section(selection, MODULE, SECTION, read_only=True)
    if section is None:
        fail("the run has not reported an optimizer yet (no hotcb.state.json, or a sweep)")
    if as_json:
        click.echo(json.dumps(section))
        return
    if not section.get("groups"):
        fail("the run has not seen its optimizer yet: it needs env['optimizer'] in kernel.apply")
    click.echo(
        f"optimizer {section.get('optimizer')}, scheduler {section.get('scheduler') or 'none'}, "
        f"config key {section.get('config_key') or 'none'}"
    )
    for index, group in enumerate(section["groups"]):
        values = " ".join(f"{k}={json.dumps(v)}" for k, v in group.items())
        click.echo(f"  group {index}: {values}")
