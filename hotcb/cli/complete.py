"""Shell completion of callback ids and their hot parameter names, from the run's state.

Click does the shell side (``eval "$(_HOTCB_COMPLETE=bash_source hotcb)"``, see
docs/cli.md); these functions give it the candidates: the ids in the run's
``hotcb.state.json`` (for ``cb describe`` the built-ins too), and for ``cb set ID`` the
names its declaration lists, as ``name=`` (after ``name=``, its choices, or ``true`` and
``false`` for a bool). The run is the one the command would act on (``--dir`` given before
the command, else found as usual); when there is none, nothing is offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from hotcb.cli.app import RunSelection
from hotcb.state import read_state

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

__all__ = ["complete_any_id", "complete_assignment", "complete_id"]


def _callbacks(ctx: click.Context) -> dict[str, Any]:
    """The callbacks of the run the command line names (``{}`` if there is none)."""
    root = ctx.find_root()
    selection = RunSelection(root.params.get("run_dir"), None)
    try:
        run = selection.run_dir(read_only=True)
    except click.ClickException:
        return {}
    callbacks = (read_state(run.state) or {}).get("callbacks")
    return callbacks if isinstance(callbacks, dict) else {}


def complete_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The run's callback ids that start with ``incomplete``."""
    from click.shell_completion import CompletionItem

    return [
        CompletionItem(cb_id, help=str((rec or {}).get("doc") or ""))
        for cb_id, rec in sorted(_callbacks(ctx).items())
        if cb_id.startswith(incomplete)
    ]


def complete_any_id(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The run's callback ids and the built-ins."""
    from click.shell_completion import CompletionItem

    from hotcb.cli.describe import builtins

    found = {item.value: item for item in complete_id(ctx, param, incomplete)}
    for cb_id in builtins():
        if cb_id.startswith(incomplete) and cb_id not in found:
            found[cb_id] = CompletionItem(cb_id, help="built-in")
    return [found[k] for k in sorted(found)]


def complete_assignment(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``name=`` for each declared hot param of the callback being set; after ``name=``,
    the values it can take when they are few (choices, booleans)."""
    from click.shell_completion import CompletionItem

    from hotcb.cli.queue import declaration

    record = _callbacks(ctx).get(ctx.params.get("cb_id") or "")
    declared = declaration(record) or []
    name, sep, _ = incomplete.partition("=")
    if not sep:
        given = {a.partition("=")[0] for a in ctx.params.get("assignments") or ()}
        return [
            CompletionItem(f"{p.name}=", help=p.help)
            for p in declared
            if p.name.startswith(incomplete) and p.name not in given
        ]
    for p in declared:
        if p.name == name:
            values = p.choices or (("true", "false") if p.type == "bool" else ())
            return [
                CompletionItem(f"{name}={v}")
                for v in map(str, values)
                if f"{name}={v}".startswith(incomplete)
            ]
    return []
