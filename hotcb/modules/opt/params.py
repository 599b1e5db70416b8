"""What ``hotcb opt set`` may change, checked without torch (the CLI and the run share it).

:func:`check_values` reads an op's params (``lr``, ``lr_scale``, ``weight_decay``,
``momentum``, ``betas``, ``clip_norm``, ``group``); :func:`plan` turns them into the new
values of every param group, given the groups as they are now (the live
``optimizer.param_groups`` in the run, their snapshot in ``hotcb.state.json`` in the CLI).
Both raise ``ValueError`` with a message that says what was wrong; nothing is changed.

Example:
    >>> group, values = check_values({"lr": 1e-4, "group": 1})
    >>> plan(group, values, [{"lr": 0.1}, {"lr": 0.01}])
    [{}, {'lr': 0.0001}]
    >>> plan(*check_values({"lr_scale": 0.5}), [{"lr": 0.1}, {"lr": 0.01}])
    [{'lr': 0.05}, {'lr': 0.005}]
    >>> plan(*check_values({"lr": -1}), [{"lr": 0.1}])
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number >= 0, got -1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HOT_KEYS", "OPT_ID", "PARAMS", "check_values", "group_view", "plan"]

#: The id of the op (``hotcb opt set`` sends it): the env key the optimizer is under.
OPT_ID = "optimizer"
#: The param-group keys hotcb changes (``clip_norm`` is hotcb's own, not torch's).
HOT_KEYS: tuple[str, ...] = ("lr", "weight_decay", "momentum", "betas", "clip_norm")
#: Every parameter of ``opt set``.
PARAMS: tuple[str, ...] = (*HOT_KEYS, "lr_scale", "group")
#: Keys a value list (one value per group) is allowed for.
_PER_GROUP = ("lr", "weight_decay", "momentum", "clip_norm")


def _number(name: str, value: Any, *, above_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (above_zero and value == 0):
        bound = "> 0" if above_zero else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _one(name: str, value: Any) -> Any:
    if name == "betas":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(
                f"betas must be two numbers in [0, 1), e.g. [0.9,0.999]; got {value!r}"
            )
        betas = [_number("betas", b) for b in value]
        if any(b >= 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {value!r}")
        return betas
    if name == "clip_norm" and value is None:
        return None  # clipping off
    return _number(name, value, above_zero=name == "clip_norm")


def check_values(params: Mapping[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """The target group (None: every group) and the checked values of an op's params.

    A value of ``lr``, ``weight_decay``, ``momentum`` or ``clip_norm`` may be a list: one
    value per group (then without ``group``). ``clip_norm=null`` turns clipping off.

    >>> check_values({"lr": [0.1, 0.01]})
    (None, {'lr': [0.1, 0.01]})
    """
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(
            f"opt has no parameter {', '.join(map(repr, unknown))}; it takes: {', '.join(PARAMS)}"
        )
    values = {k: v for k, v in params.items() if k != "group"}
    if not values:
        raise ValueError("nothing to set: give e.g. lr=1e-4 (group=N only picks the group)")
    if "lr" in values and "lr_scale" in values:
        raise ValueError("give lr or lr_scale, not both")
    group = params.get("group")
    if group is not None and (isinstance(group, bool) or not isinstance(group, int) or group < 0):
        raise ValueError(f"group must be a param group index (an integer >= 0), got {group!r}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "lr_scale":
            out[name] = _number(name, value, above_zero=True)
        elif isinstance(value, list) and name in _PER_GROUP:
            if group is not None:
                raise ValueError(f"{name}: give one value with group=N, or a list without it")
            out[name] = [_one(name, v) for v in value]
        else:
            out[name] = _one(name, value)
    return group, out


def plan(
    group: int | None, values: Mapping[str, Any], groups: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The new values of each param group (``{}`` for a group left alone), from
    :func:`check_values` and the groups as they are now. ``lr_scale`` becomes ``lr``.

    Raises ``ValueError`` for a group that does not exist, a list whose length is not the
    number of groups, or a key the optimizer's groups do not have (``betas`` on SGD)."""
    count = len(groups)
    if group is not None and group >= count:
        raise ValueError(
            f"group={group} does not exist: the optimizer has {count} param group(s), "
            f"0..{count - 1}"
        )
    targets = range(count) if group is None else [group]
    out: list[dict[str, Any]] = [{} for _ in range(count)]
    for name, value in values.items():
        key = "lr" if name == "lr_scale" else name
        if key != "clip_norm":
            missing = [i for i in targets if key not in groups[i]]
            if missing:
                have = sorted(k for k in groups[missing[0]] if k in HOT_KEYS)
                raise ValueError(
                    f"param group {missing[0]} has no {key!r} (this optimizer's groups have: "
                    f"{', '.join(have) or 'none of ' + ', '.join(HOT_KEYS)})"
                )
        if isinstance(value, list) and key != "betas" and len(value) != count:
            raise ValueError(
                f"{key}: {len(value)} value(s) given, the optimizer has {count} param group(s)"
            )
        for i in targets:
            if name == "lr_scale":
                out[i]["lr"] = float(groups[i]["lr"]) * value
            elif isinstance(value, list) and key != "betas":
                out[i][key] = value[i]
            else:
                out[i][key] = value
    return out


def group_view(group: Mapping[str, Any], clip_norm: float | None = None) -> dict[str, Any]:
    """The hot values of one param group, as ``hotcb.state.json`` and ``opt show`` give them.

    >>> group_view({"lr": 0.1, "momentum": 0.9, "params": [], "nesterov": False})
    {'lr': 0.1, 'momentum': 0.9, 'clip_norm': None}
    """
    view: dict[str, Any] = {}
    for key in HOT_KEYS:
        if key in group and key != "clip_norm":
            value = group[key]
            view[key] = list(value) if isinstance(value, (list, tuple)) else _plain(value)
    view["clip_norm"] = clip_norm
    return view


def _plain(value: Any) -> Any:
    """A float for a tensor-valued hyperparameter (torch allows a tensor ``lr``)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
