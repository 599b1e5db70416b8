"""Small validators for hot parameters, shared by the built-in callbacks.

Each raises ``ValueError`` (or ``TypeError``) with a message that names the parameter
and what it accepts, which the ledger and the CLI show as-is.

Example:
    >>> positive_int("every", 5)
    5
    >>> positive_int("every", 0)
    Traceback (most recent call last):
    ...
    ValueError: every must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "boolean",
    "check_known",
    "choice",
    "finite_above",
    "glob_pattern",
    "positive_float",
    "positive_int",
    "renamed",
    "str_list",
]


def check_known(owner: str, kwargs: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise ``TypeError`` if ``kwargs`` has a name not in ``known``."""
    allowed = sorted(known)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"{owner} has no hot parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(allowed)}"
        )


def renamed(kwargs: dict[str, Any], theirs: str, ours: str) -> dict[str, Any]:
    """``kwargs`` with the name ``theirs`` (another project's spelling) moved to ``ours``.

    >>> renamed({"out_path": "m.jsonl", "every": 2}, "out_path", "path")
    {'every': 2, 'path': 'm.jsonl'}
    >>> renamed({"out_path": "a", "path": "b"}, "out_path", "path")
    Traceback (most recent call last):
    ...
    TypeError: out_path is another name of path: give one of them
    """
    if theirs not in kwargs:
        return kwargs
    if ours in kwargs:
        raise TypeError(f"{theirs} is another name of {ours}: give one of them")
    out = {k: v for k, v in kwargs.items() if k != theirs}
    out[ours] = kwargs[theirs]
    return out


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (bools are rejected; integral floats like ``5.0`` are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def positive_float(name: str, value: Any) -> float:
    """A finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if value == float("inf"):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def finite_above(name: str, value: Any, bound: float) -> float:
    """A finite number > ``bound`` (bools are rejected).

    >>> finite_above("spike_factor", 3, 1)
    3.0
    >>> finite_above("spike_factor", 1, 1)
    Traceback (most recent call last):
    ...
    ValueError: spike_factor must be a finite number > 1, got 1
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > bound
        or math.isinf(value)
    ):
        raise ValueError(f"{name} must be a finite number > {bound:g}, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` itself (not ``1``, ``"yes"``, ...).

    >>> boolean("per_layer", True)
    True
    >>> boolean("per_layer", "yes")
    Traceback (most recent call last):
    ...
    ValueError: per_layer must be true or false, got 'yes'
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def glob_pattern(name: str, value: Any, over: str = "names") -> str:
    """A non-empty shell-style glob (:mod:`fnmatch`); ``over`` says what it matches.

    >>> glob_pattern("pattern", "encoder.*")
    'encoder.*'
    >>> glob_pattern("pattern", "", over="module names")
    Traceback (most recent call last):
    ...
    ValueError: pattern must be a non-empty glob over module names, got ''
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty glob over {over}, got {value!r}")
    return value


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """One of ``options``."""
    opts = list(options)
    if value not in opts:
        raise ValueError(f"{name} must be one of {', '.join(opts)}, got {value!r}")
    return str(value)


def str_list(name: str, value: Any) -> list[str]:
    """A list of strings; a single string becomes a one-element list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{name} must be a list of names, got {value!r}")
