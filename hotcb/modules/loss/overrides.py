"""The ``loss`` module's export: the loss state's net change as overrides of the app's config.

``hotcb.loss.config_key: loss`` names the node that ``env["loss_state"]`` is; every leaf
whose value at the end (or now, for a live run) differs from what the module first saw
becomes ``loss.weights.distill=0.2``. A ramp exports as the weight it had reached.

Example:
    >>> from hotcb.hydra.module_overrides import ModuleFacts
    >>> state = {"loss": {"config_key": "loss", "initial": {"weights": {"distill": 0.5}},
    ...                   "values": {"weights": {"distill": 0.2}}}}
    >>> config_overrides(ModuleFacts(state, [], None))
    ['loss.weights.distill=0.2']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hotcb.hydra.deltas import format_value
from hotcb.hydra.module_overrides import ModuleFacts, config_value, is_missing

__all__ = ["config_overrides"]


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def config_overrides(facts: ModuleFacts) -> list[str]:
    """The overrides of the loss module of a run (see the module docstring)."""
    section = facts.state.get("loss")
    if not isinstance(section, dict) or not section.get("config_key"):
        return []
    key = section["config_key"]
    initial = dict(_leaves(section.get("initial") or {}))
    out: list[str] = []
    for path, value in _leaves(section.get("values") or {}):
        if path in initial and initial[path] == value and type(initial[path]) is type(value):
            continue
        where = f"{key}.{path}"
        plus = ""
        if facts.config is not None and is_missing(config_value(facts.config, where)):
            plus = "+"
        out.append(f"{plus}{where}={format_value(value)}")
    return out
