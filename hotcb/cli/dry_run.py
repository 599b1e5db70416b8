"""``--dry-run``: what a command would change, as the Hydra override delta it would add.

The run's callbacks as they are now (its ``hotcb.state.json``) are turned into
``hotcb.callbacks`` nodes (:func:`hotcb.hydra.deltas.final_nodes`), the op is applied to a
copy of them, and :func:`hotcb.hydra.deltas.compute_deltas` gives the overrides between
the two: what ``hotcb export-config`` would show more once the run applied it.

Example:
    >>> from hotcb.ops import Op
    >>> now = {"hb": {"_target_": "hotcb.modules.cb.callbacks.heartbeat.HeartbeatCallback",
    ...               "every": 10}}
    >>> op_deltas(now, Op(op="set", id="hb", params={"every": 5}))
    ['hotcb.callbacks.hb.every=5']
    >>> op_deltas(now, Op(op="disable", id="hb")), op_deltas(now, Op(op="unload", id="hb"))
    (['+hotcb.callbacks.hb._enabled_=false'], ['~hotcb.callbacks.hb'])
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hotcb.ops import Op

__all__ = ["op_deltas", "run_deltas"]


def op_deltas(nodes: Mapping[str, Mapping[str, Any]], op: Op) -> list[str]:
    """The overrides that take ``nodes`` (id -> ``hotcb.callbacks`` node) to what they
    are after ``op`` (raises :class:`~hotcb.hydra.deltas.DeltaError` for a value Hydra's
    grammar cannot spell)."""
    from hotcb.hydra.deltas import compute_deltas
    from hotcb.hydra.hydrate import ENABLED_KEY, target_string

    after: dict[str, dict[str, Any]] = {k: dict(copy.deepcopy(v)) for k, v in nodes.items()}
    node = after.get(op.id)
    if op.op == "load" and op.target is not None:
        after[op.id] = {"_target_": target_string(op.target), **op.init, **op.params}
        if op.enabled is False:
            after[op.id][ENABLED_KEY] = False
    elif node is None:
        pass  # the run does not have it: the op changes nothing it would export
    elif op.op == "set":
        node.update(op.params)
    elif op.op == "enable":
        node.pop(ENABLED_KEY, None)
    elif op.op == "disable":
        node[ENABLED_KEY] = False
    elif op.op == "unload":
        del after[op.id]
    return compute_deltas(nodes, after)


def run_deltas(run_dir: str | Path, op: Op) -> list[str]:
    """:func:`op_deltas` against the run's callbacks now (none if it has no state yet)."""
    from hotcb.hydra.deltas import DeltaError, final_nodes

    try:
        nodes = final_nodes(run_dir)
    except DeltaError:
        nodes = {}
    return op_deltas(nodes, op)
