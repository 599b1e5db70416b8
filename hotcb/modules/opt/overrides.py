"""The ``opt`` module's export: the net optimizer change as overrides of the app's config.

``hotcb.opt.config_key: optimizer`` names the node the app builds its optimizer from;
the last value each applied ``set`` left (``lr_scale`` as the lr it gave) becomes
``optimizer.lr=0.0001`` (``+optimizer.KEY=...`` for a key the node lacks). A value is
exported only when every param group ended with it: a config has one ``lr``, so a change
to some groups only is left out. ``clip_norm`` is hotcb's own and exports as
``hotcb.opt.clip_norm=...``. Values the config already has are left out.

Example:
    >>> from hotcb.hydra.module_overrides import ModuleFacts
    >>> from hotcb.ledger import LedgerEntry
    >>> entry = LedgerEntry(seq=3, wall_time=0.0, step=40, epoch=0, event=None, module="opt",
    ...     op="set", id="optimizer", source="external", decision="applied",
    ...     payload={"params": {"lr": 1e-4}, "groups": [{"lr": 1e-4}, {"lr": 1e-4}]})
    >>> state = {"optimizer": {"config_key": "optimizer", "groups": [{}, {}]}}
    >>> config_overrides(ModuleFacts(state, [entry], {"optimizer": {"lr": 0.01}}))
    ['optimizer.lr=0.0001']
"""

from __future__ import annotations

from typing import Any

from hotcb.hydra.deltas import format_value
from hotcb.hydra.module_overrides import ModuleFacts, config_value, is_missing

__all__ = ["config_overrides"]

#: Where hotcb's own opt settings live in the app's config.
_OWN = "hotcb.opt"


def config_overrides(facts: ModuleFacts) -> list[str]:
    """The overrides of the opt module of a run (see the module docstring)."""
    section = facts.state.get("optimizer")
    if not isinstance(section, dict):
        return []
    count = len(section.get("groups") or [])
    last: dict[str, dict[int, Any]] = {}
    for entry in facts.entries:
        if entry.op != "set":
            continue
        for index, values in enumerate(entry.payload.get("groups") or []):
            for key, value in (values or {}).items():
                last.setdefault(key, {})[index] = value
                count = max(count, index + 1)
    out: list[str] = []
    for key, per_group in last.items():
        values = [per_group.get(i) for i in range(count)]
        if len(per_group) != count or any(v != values[0] for v in values):
            continue  # not one value for every group: no single config key holds it
        if key == "clip_norm":
            where = f"{_OWN}.clip_norm"
        elif section.get("config_key"):
            where = f"{section['config_key']}.{key}"
        else:
            continue
        out.extend(_override(where, values[0], facts.config))
    return out


def _override(where: str, value: Any, config: Any) -> list[str]:
    old = config_value(config, where) if config is not None else None
    if config is not None and not is_missing(old) and old == value:
        return []
    plus = "+" if config is not None and is_missing(old) else ""
    return [f"{plus}{where}={format_value(value)}"]
