"""Adopted trainer callbacks in an export: ``callbacks.<id>.<name>=value``.

An adopted callback (``hotcb.adopt: [early_stopping]``, see
:mod:`hotcb.adapters.lightning_callbacks`) is the app's own, built from its
``callbacks.<id>`` config node; hotcb only sets its parameters. Its live changes are
therefore not ``hotcb.callbacks`` nodes but overrides of that node, appended to the next
command (and to ``--format overrides``).

Example:
    >>> final = {"hb": {"_target_": "a.Hb", "every": 5},
    ...          "early_stopping": {"_target_": ADOPTED_TARGETS[0],
    ...                             "key": "callbacks.early_stopping", "patience": 5}}
    >>> plain, adopted = split_adopted(final)
    >>> list(plain), adopted_overrides(adopted)
    (['hb'], ['callbacks.early_stopping.patience=5'])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotcb.hydra.deltas import format_value
from hotcb.hydra.hydrate import ENABLED_KEY, SET_KEY
from hotcb.hydra.module_overrides import override_key

__all__ = [
    "ADOPTED_TARGETS",
    "adopted_overrides",
    "merge_overrides",
    "split_adopted",
]

#: The ``_target_`` adopted callbacks are loaded through (their node carries ``key``).
ADOPTED_TARGETS = ("hotcb.adapters.lightning_callbacks.adopted",)
_RESERVED = ("_target_", "key", ENABLED_KEY)

Nodes = Mapping[str, Mapping[str, Any]]


def split_adopted(nodes: Nodes) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(hotcb.callbacks nodes, adopted nodes)`` of an id -> node mapping."""
    plain: dict[str, Any] = {}
    adopted: dict[str, Any] = {}
    for cb_id, node in nodes.items():
        (adopted if node.get("_target_") in ADOPTED_TARGETS else plain)[cb_id] = node
    return plain, adopted


def adopted_overrides(adopted: Nodes) -> list[str]:
    """``<key>.<name>=value`` for every parameter set live on an adopted callback (those
    an export would put under ``_set_`` too: they are all attributes of the app's own
    callback, set through its config node).

    >>> adopted_overrides({"es": {"_target_": ADOPTED_TARGETS[0], "key": "callbacks.es",
    ...                           "_set_": {"patience": 3}}})
    ['callbacks.es.patience=3']
    """
    out: list[str] = []
    for node in adopted.values():
        values = {name: value for name, value in node.items() if name not in _RESERVED}
        values.update(values.pop(SET_KEY, None) or {})
        out += [f"{node['key']}.{name}={format_value(value)}" for name, value in values.items()]
    return out


def merge_overrides(kept: list[str], added: list[str]) -> list[str]:
    """``kept`` without the ones ``added`` sets again (same key), then ``added``.

    >>> merge_overrides(["x=1", "callbacks.es.patience=3"], ["callbacks.es.patience=5"])
    ['x=1', 'callbacks.es.patience=5']
    """
    keys = {override_key(o) for o in added}
    return [o for o in kept if override_key(o) not in keys] + added
