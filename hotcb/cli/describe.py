"""``hotcb cb list`` and ``hotcb cb describe ID``: what there is to load and what each
callback lets you change.

A run's callbacks are described from its ``hotcb.state.json`` (the run writes each one's
declared hot parameters with their current values, its init args, events and docstring),
so the CLI never imports the user's code. A built-in (an option of the Hydra group
``hotcb/callbacks``, found from its option file) that the run has not loaded is described
from its class: the built-ins import neither torch nor anything heavy.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import click

from hotcb.cli.app import RunSelection, fail, pass_selection
from hotcb.cli.complete import complete_any_id
from hotcb.cli.table import echo_table
from hotcb.hotparams import declared_params
from hotcb.rundir import RunDir
from hotcb.state import read_state

__all__ = ["builtins", "cb_describe", "cb_list", "describe_builtin", "run_callbacks"]

_OPTIONS = Path(__file__).resolve().parents[1] / "conf" / "hotcb" / "callbacks"
_TARGET_RE = re.compile(r"^\s*_target_:\s*([\w.]+)\s*$", re.M)


def builtins() -> dict[str, dict[str, str]]:
    """The built-in callbacks by id (the option names of ``hotcb/callbacks``), each with
    its ``target`` ``{kind, path, symbol}``, read from the option files.

    >>> builtins()["heartbeat"]["symbol"]
    'HeartbeatCallback'
    """
    out: dict[str, dict[str, str]] = {}
    for option in sorted(_OPTIONS.glob("*.yaml")):
        found = _TARGET_RE.search(option.read_text(encoding="utf-8"))
        if found:
            path, _, symbol = found.group(1).rpartition(".")
            out[option.stem] = {"kind": "module", "path": path, "symbol": symbol}
    return out


def describe_builtin(cb_id: str) -> dict[str, Any]:
    """The built-in ``cb_id`` described from its class, in the shape of a state record:
    ``target``, ``hot_params`` (each ``value`` its default), ``init``, ``events``, ``doc``."""
    import inspect

    target = builtins()[cb_id]
    cls = getattr(importlib.import_module(target["path"]), target["symbol"])
    declared = declared_params(cls) or ()
    init = {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if name != "id" and p.default is not inspect.Parameter.empty
    }
    events = getattr(cls, "events", None)
    doc = (inspect.getdoc(cls) or "").splitlines()
    return {
        "target": target,
        "loaded": False,
        "hot_params": [{**p.to_dict(), "value": p.default} for p in declared],
        "init": init,
        "events": sorted(events) if isinstance(events, (tuple, list, set, frozenset)) else None,
        "doc": doc[0] if doc else "",
    }


def run_callbacks(selection: RunSelection) -> tuple[RunDir | None, dict[str, Any]]:
    """The run a read-only command would read (None if there is none) and its callbacks'
    state records."""
    try:
        run = selection.run_dir(read_only=True)
    except click.ClickException:
        if selection.chosen:
            raise
        return None, {}
    state = read_state(run.state) or {}
    callbacks = state.get("callbacks")
    return run, callbacks if isinstance(callbacks, dict) else {}


def _target_text(target: Any) -> str:
    if not isinstance(target, dict):
        return "?"
    return f"{target.get('path')}:{target.get('symbol')}"


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the callbacks as JSON.")
@pass_selection
def cb_list(selection: RunSelection, as_json: bool) -> None:
    """List the run's callbacks and the built-ins, with their hot parameters."""
    run, loaded = run_callbacks(selection)
    rows: list[dict[str, Any]] = []
    for cb_id, rec in sorted(loaded.items()):
        declared = rec.get("hot_params")
        rows.append(
            {
                "id": cb_id,
                "loaded": True,
                "enabled": bool(rec.get("enabled")),
                "builtin": cb_id in builtins() and rec.get("target") == builtins()[cb_id],
                "target": rec.get("target"),
                "hot_params": [p["name"] for p in declared] if isinstance(declared, list) else None,
            }
        )
    for cb_id, target in builtins().items():
        if cb_id not in loaded:
            declared = describe_builtin(cb_id)["hot_params"]
            rows.append(
                {
                    "id": cb_id,
                    "loaded": False,
                    "enabled": False,
                    "builtin": True,
                    "target": target,
                    "hot_params": [p["name"] for p in declared],
                }
            )
    if as_json:
        click.echo(json.dumps({"run_dir": str(run.path) if run else None, "callbacks": rows}))
        return
    click.echo(f"run {run.path}" if run else "no run found: the built-ins")
    table = [("ID", "STATE", "TARGET", "HOT PARAMS")]
    for r in rows:
        state = ("enabled" if r["enabled"] else "disabled") if r["loaded"] else "built-in"
        params = r["hot_params"]
        shown = ", ".join(params) if params is not None else "(not declared)"
        table.append((r["id"], state, _target_text(r["target"]), shown))
    echo_table(table, shrink=2)


@click.command("describe")
@click.argument("cb_id", metavar="ID", shell_complete=complete_any_id)
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@pass_selection
def cb_describe(selection: RunSelection, cb_id: str, as_json: bool) -> None:
    """Describe callback ID: target, hot params (type, default, current value, help),
    init args, the events it handles, its docstring. ID is one of the run's callbacks or
    a built-in (also one the run has not loaded)."""
    _, loaded = run_callbacks(selection)
    if cb_id in loaded:
        info = dict(loaded[cb_id])
    elif cb_id in builtins():
        info = describe_builtin(cb_id)
    else:
        known = ", ".join(sorted({*loaded, *builtins()}))
        fail(f"no callback {cb_id!r} in the run nor among the built-ins; known: {known}")
    if as_json:
        click.echo(json.dumps({"id": cb_id, **info}, indent=2))
        return
    where = "loaded in the run" if info.get("loaded") else "built-in, not loaded in the run"
    if info.get("loaded"):
        where += ", enabled" if info.get("enabled") else ", disabled"
    click.echo(f"{cb_id}: {_target_text(info.get('target'))} ({where})")
    if info.get("doc"):
        click.echo(f"  {info['doc']}")
    events = info.get("events")
    click.echo(f"events: {', '.join(events) if events else 'every event'}")
    declared = info.get("hot_params")
    if not isinstance(declared, list):
        params = json.dumps(info.get("params") or {})
        click.echo(f"hot params: not declared (set_params decides); current params: {params}")
    else:
        click.echo("hot params:")
        table = [("NAME", "TYPE", "DEFAULT", "VALUE", "HELP")]
        for p in declared:
            kind = p.get("type", "any") + _range(p)
            value = json.dumps(p.get("value"))
            # the other names it is set by (the reference project's): `keys (scalars)`
            name = p["name"] + (f" ({', '.join(p['aliases'])})" if p.get("aliases") else "")
            table.append((name, kind, json.dumps(p.get("default")), value, p.get("help", "")))
        echo_table(table, indent="  ")
    init = info.get("init") or {}
    click.echo(
        "init args: " + (" ".join(f"{k}={json.dumps(v)}" for k, v in init.items()) or "none")
    )


def _range(p: dict[str, Any]) -> str:
    """``' >= 1'``, ``' in log|skip|stop'``: the bounds or choices of a declared param."""
    parts = [
        f" {op} {p[key]:g}"
        for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
        if isinstance(p.get(key), (int, float))
    ]
    if isinstance(p.get("choices"), list):
        parts.append(" in " + "|".join(map(str, p["choices"])))
    return "".join(parts)
