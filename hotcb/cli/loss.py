"""``hotcb loss ...``: change the mapping the run's loss function reads (``set``), see it
(``show``).

Names are paths into the loss state: ``distill_w=0.2`` (``weights.distill``),
``terms.aux=false``, ``ramps.depth={type: linear, warmup_frac: 0.2, end: 2.0}``. They are
checked here against the loss state the run last wrote to ``hotcb.state.json`` before
anything is queued. See docs/opt-loss.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import click

from hotcb.cli.answer import answer_options
from hotcb.cli.app import HotcbGroup, RunSelection, fail, pass_selection
from hotcb.cli.opt import module_section

__all__ = ["loss", "nested_assignments"]

MODULE, SECTION = "loss", "loss"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@click.group(cls=HotcbGroup)
def loss() -> None:
    """Change the loss weights, term switches and ramps the run's loss function reads."""


def nested_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c_w=0.2"]`` -> ``{"a": {"b": 1}, "c_w": 0.2}`` (values as YAML scalars).

    >>> nested_assignments(["terms.aux=false", "distill_w=0.2"])
    {'terms': {'aux': False}, 'distill_w': 0.2}
    """
    from hotcb.ops import CommandError, check_text, parse_scalar

    out: dict[str, Any] = {}
    for item in items:
        path, sep, raw = item.partition("=")
        parts = path.strip().split(".")
        if not sep or not all(_KEY_RE.fullmatch(p) for p in parts):
            fail(f"set: expected name=value or a.b=value, got {item!r} (e.g. distill_w=0.2)")
        try:
            value = parse_scalar(check_text(raw, path))
        except CommandError as exc:
            fail(f"set: {exc}")
        if not parts[0].isidentifier():
            fail(f"set: {parts[0]!r} in {item!r} must be a Python identifier")
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                fail(f"set: {path!r} is given both as a value and as a section")
            node = child
        node[parts[-1]] = value
    return out


@loss.command("set")
@answer_options()
@click.argument("assignments", nargs=-1, metavar="K=V...")
@click.option("--force", is_flag=True, help="Skip the checks against the run's state.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued command as JSON.")
@pass_selection
def loss_set(
    selection: RunSelection, assignments: tuple[str, ...], force: bool, as_json: bool
) -> None:
    """Set leaves of the loss state, or start a ramp, at the next safe point.

    \b
    hotcb loss set distill_w=0.2                 # weights.distill
    hotcb loss set terms.aux=false
    hotcb loss set 'ramps.depth={type: linear, warmup_frac: 0.2, end: 2.0}'
    hotcb loss set ramps.depth=null              # stop that ramp

    A ramp moves weights.<name> from its value now to `end` over `steps` steps, or over
    warmup_frac of the run's total steps (the loop passes env['total_steps']).
    """
    if not assignments:
        fail("nothing to set: give name=value pairs, e.g. hotcb loss set distill_w=0.2")
    from hotcb.cli.queue import send
    from hotcb.modules.loss.module import LOSS_OPS
    from hotcb.modules.loss.params import LOSS_ID, check_change, check_ramp
    from hotcb.ops import register_ops

    params = nested_assignments(assignments)
    try:
        section = None if force else module_section(selection, MODULE, SECTION, read_only=False)
        values = (section or {}).get("values")
        if isinstance(values, dict):
            check_change(params, values)
        else:
            for name, spec in (params.get("ramps") or {}).items():
                check_ramp(name, spec)
    except ValueError as exc:
        fail(f"{exc}; nothing was queued")
    register_ops(MODULE, LOSS_OPS)
    send(selection, {"module": MODULE, "op": "set", "id": LOSS_ID, "params": params}, as_json)


@loss.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the run's loss section as JSON.")
@pass_selection
def loss_show(selection: RunSelection, as_json: bool) -> None:
    """Print the loss state and the running ramps (as the run last wrote them)."""
    section = module_section(selection, MODULE, SECTION, read_only=True)
    if section is None:
        fail("the run has not reported a loss state yet (no hotcb.state.json, or a sweep)")
    if as_json:
        click.echo(json.dumps(section))
        return
    if section.get("values") is None:
        fail("the run has not seen its loss state yet: it needs env['loss_state'] in kernel.apply")
    click.echo(f"loss state (config key {section.get('config_key') or 'none'}):")
    click.echo(json.dumps(section["values"], indent=2))
    for name, ramp in (section.get("ramps") or {}).items():
        click.echo(
            f"ramp {name}: {ramp['kind']} {ramp['start']} -> {ramp['end']} over {ramp['length']} "
            f"steps from step {ramp['start_step']}"
        )
