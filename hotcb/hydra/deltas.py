"""Live changes as Hydra override deltas.

The deltas take the config a run started from to the callback set it ended with.
Pasted after the original command, they start the next run where this one ended:

=========================  ================================================================
live op                    override
=========================  ================================================================
``set heartbeat every=5``  ``hotcb.callbacks.heartbeat.every=5``
``load feat_viz ...``      ``+hotcb.callbacks.feat_viz={_target_: /run/hotcb.sources/<sha>.py:FeatureViz, every: 50}``
``unload timing``          ``~hotcb.callbacks.timing``
``disable timing``         ``+hotcb.callbacks.timing._enabled_=false`` (no ``+`` if the key exists)
``set arm armed=true``     ``+hotcb.callbacks.arm._set_.armed=true`` (``armed``: not a constructor kwarg)
=========================  ================================================================

Deltas are computed from the *net* change (config at step 0 vs the final state), so
failed ops give none and successive sets collapse to the last value.

Example:
    >>> base = {"hb": {"_target_": "a.Hb", "every": 100}}
    >>> final = {"hb": {"_target_": "a.Hb", "every": 5, "_enabled_": False},
    ...          "lr": {"_target_": "a.Lr", "tags": ["x y", 3e-4]}}
    >>> compute_deltas(base, final)
    ['hotcb.callbacks.hb.every=5', '+hotcb.callbacks.hb._enabled_=false', "+hotcb.callbacks.lr={_target_: 'a.Lr', tags: ['x y', 0.0003]}"]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hotcb.errors import HotcbError
from hotcb.hydra.hydrate import ENABLED_KEY, SET_KEY, target_string
from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.ops import DEFAULT_MODULE, CallbackTarget, CommandError
from hotcb.rundir import RunDir
from hotcb.state import read_state

__all__ = [
    "DeltaError",
    "baseline_nodes",
    "compute_deltas",
    "deltas_for_run",
    "final_nodes",
    "format_value",
]

PREFIX = "hotcb.callbacks"
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")  # used with fullmatch, not `$`


class DeltaError(HotcbError, ValueError):
    """A value that Hydra's override grammar cannot express, or a run whose files do not
    say what it ended with (``path`` names the file)."""


def _quote(text: str) -> str:
    # Hydra quoted strings: a quote inside is escaped with a backslash, and so are the
    # backslashes that come right before a quote, before ${ or at the end; ${ itself
    # would interpolate, so it is escaped too.
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            j = i
            while j < len(text) and text[j] == "\\":
                j += 1
            run = text[i:j]
            if j == len(text) or text[j] == "'" or text.startswith("${", j):
                run = run * 2
            out.append(run)
            i = j
            continue
        if ch == "'":
            out.append("\\'")
        elif ch == "$" and text.startswith("${", i):
            out.append("\\$")
        else:
            out.append(ch)
        i += 1
    return "'" + "".join(out) + "'"


def format_value(value: Any) -> str:
    """Spell ``value`` in Hydra's override grammar so that Hydra parses it back equal.

    >>> [format_value(v) for v in [5, 3e-4, True, None, "it's", [1, "a"], {"k": 1.5}]]
    ['5', '0.0003', 'true', 'null', "'it\\\\'s'", "[1, 'a']", '{k: 1.5}']
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        parts = []
        for key, val in value.items():
            if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
                raise DeltaError(f"dict key {key!r} cannot be written as a Hydra override key")
            parts.append(f"{key}: {format_value(val)}")
        return "{" + ", ".join(parts) + "}"
    raise DeltaError(f"cannot express a {type(value).__name__} as a Hydra override value")


def compute_deltas(
    baseline: Mapping[str, Mapping[str, Any]], final: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Overrides that take ``hotcb.callbacks`` from ``baseline`` to ``final`` (both id -> node)."""
    out: list[str] = []
    for cb_id in baseline:
        if cb_id not in final:
            out.append(f"~{PREFIX}.{cb_id}")
    for cb_id, after in final.items():
        before = baseline.get(cb_id)
        if before is None:
            out.append(f"+{PREFIX}.{cb_id}={format_value(dict(after))}")
            continue
        if before.get("_target_") != after.get("_target_"):
            out.append(f"~{PREFIX}.{cb_id}")
            out.append(f"+{PREFIX}.{cb_id}={format_value(dict(after))}")
            continue
        keys = [k for k in after if k not in ("_target_", ENABLED_KEY, SET_KEY)]
        keys.append(ENABLED_KEY)
        for key in keys:
            new = after.get(key, True) if key == ENABLED_KEY else after[key]
            old = before.get(key, True) if key == ENABLED_KEY else before.get(key, _MISSING)
            if old == new and type(old) is type(new):
                continue
            plus = "" if key in before else "+"
            out.append(f"{plus}{PREFIX}.{cb_id}.{key}={format_value(new)}")
        out.extend(_set_deltas(cb_id, before.get(SET_KEY) or {}, after.get(SET_KEY) or {}))
    return out


def _set_deltas(cb_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """One override per changed hot param under ``_set_`` (``+`` for a new one: Hydra
    makes the ``_set_`` node too)."""
    out = []
    for key, new in after.items():
        old = before.get(key, _MISSING)
        if old == new and type(old) is type(new):
            continue
        plus = "" if key in before else "+"
        out.append(f"{plus}{PREFIX}.{cb_id}.{SET_KEY}.{key}={format_value(new)}")
    return out


_MISSING = object()


def _node(
    target: Mapping[str, Any],
    sha256: str | None,
    run: RunDir,
    params: Mapping[str, Any],
    enabled: bool,
    init_keys: Any = None,
    source_path: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """A callback's config node: constructor kwargs at the top, the other hot params under
    ``_set_`` (``init_keys``: the constructor kwargs, as the run recorded them; None: all)."""
    if target.get("kind") == "python_file" and sha256:
        path = source_path(sha256) if source_path is not None else str(run.source_file(sha256))
        target = {**target, "path": path}
    node: dict[str, Any] = {"_target_": target_string(target)}
    hot: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(init_keys, list) and key not in init_keys:
            hot[key] = value
        else:
            node[key] = value
    if hot:
        node[SET_KEY] = hot
    if not enabled:
        node[ENABLED_KEY] = False
    return node


def baseline_nodes(
    run_dir: str | Path, entries: list[LedgerEntry] | None = None
) -> dict[str, dict[str, Any]]:
    """The callback nodes the run started from (its ``source: config`` loads)."""
    run = RunDir(run_dir)
    if entries is None:
        entries = read_ledger(run.ledger).entries
    nodes: dict[str, dict[str, Any]] = {}
    for e in entries:
        if (
            e.source != "config"
            or e.decision != "applied"
            or e.module != DEFAULT_MODULE
            or e.id is None
        ):
            continue
        p = e.payload
        if e.op == "load":
            try:
                target = CallbackTarget.from_dict(p.get("target") or {}).to_dict()
            except CommandError as exc:
                raise DeltaError(f"entry seq {e.seq} ({e.id}): {exc}", path=run.ledger) from None
            init = p.get("init") or {}
            keys = p.get("init_keys")  # recorded since _set_ exists; before: init only
            node = _node(
                target,
                p.get("sha256"),
                run,
                {**init, **(p.get("params") or {})},
                True,
                keys if isinstance(keys, list) else list(init),
            )
            if p.get("enabled") is False:
                node[ENABLED_KEY] = False
            nodes[e.id] = node
    return nodes


def final_nodes(
    run_dir: str | Path, *, source_path: Callable[[str], str] | None = None
) -> dict[str, dict[str, Any]]:
    """The callback nodes the run ended with (or has now, if it is live). ``source_path``:
    the path a ``.py`` callback's node names for its captured source, given its sha256
    (default: the capture in the run dir)."""
    run = RunDir(run_dir)
    state = read_state(run.state)
    if state is None:
        raise DeltaError(
            f"missing or unreadable: was a hotcb run started in {run.path}?", path=run.state
        )
    out: dict[str, dict[str, Any]] = {}
    for cb_id, rec in (state.get("callbacks") or {}).items():
        out[cb_id] = _node(
            rec["target"],
            rec.get("sha256"),
            run,
            rec.get("params") or {},
            bool(rec.get("enabled", True)),
            rec.get("init_keys"),
            source_path,
        )
    return out


def deltas_for_run(run_dir: str | Path) -> list[str]:
    """The override deltas of one run (config at step 0 -> final state)."""
    return compute_deltas(baseline_nodes(run_dir), final_nodes(run_dir))
