"""Dotted paths into the env: ``"loss"``, ``"metrics.eval_loss"``, ``"outputs.logits"``.

The reference project's callbacks name what they read by such paths (its ``paths``,
``scalars`` and ``tensor_paths`` parameters); each part is a dict key or an attribute.

Example:
    >>> class Out: logits = [1, 2]
    >>> env = {"loss": 0.5, "metrics": {"eval_loss": 0.7}, "outputs": Out()}
    >>> [lookup(env, p) for p in ("loss", "metrics.eval_loss", "outputs.logits")]
    [0.5, 0.7, [1, 2]]
    >>> lookup(env, "metrics.missing") is MISSING
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MISSING", "lookup"]

#: What :func:`lookup` returns for a path that leads nowhere.
MISSING: Any = object()


def lookup(env: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (the env key itself first, so a key with a dot works too),
    or :data:`MISSING`."""
    if path in env:
        return env[path]
    value: Any = env
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        else:
            value = getattr(value, part, MISSING)
        if value is MISSING:
            return MISSING
    return value
