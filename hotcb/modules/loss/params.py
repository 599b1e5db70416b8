"""What ``hotcb loss set`` may change in the loss state, checked without torch.

The loss state is a mapping the app's loss function reads (``env["loss_state"]``, often a
node of its Hydra config), e.g. ``{"weights": {"distill": 0.5}, "terms": {"aux": True}}``.
An op's params name leaves of it:

* ``distill_w=0.2``: ``weights.distill`` (the ``_w`` suffix is short for ``weights.``);
* ``terms={aux: false}`` (the CLI's ``terms.aux=false``): a dotted path, any depth;
* ``ramps={depth: {type: linear, warmup_frac: 0.2, end: 2.0}}`` (``ramps.depth=...``): a
  ramp of ``weights.depth``, evaluated every step (:mod:`hotcb.modules.loss.ramps`);
  ``ramps.depth=null`` stops it.

Only leaves the state already has can be set, each to a value of the same kind (a number
for a number, true/false for a bool): a key the loss function does not read would change
nothing, so it is refused with the keys there are.

Example:
    >>> state = {"weights": {"distill": 0.5, "depth": 1.0}, "terms": {"aux": True}}
    >>> sets, ramps = check_change({"distill_w": 0.2, "terms": {"aux": False}}, state)
    >>> sets, ramps
    ({'weights.distill': 0.2, 'terms.aux': False}, {})
    >>> check_change({"distil_w": 0.2}, state)
    Traceback (most recent call last):
    ...
    ValueError: loss state has no 'weights.distil' (weights has: depth, distill)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["LOSS_ID", "RAMP_TYPES", "check_change", "check_ramp", "leaf", "split_path"]

#: The id of the op (``hotcb loss set`` sends it): the env key of the loss state.
LOSS_ID = "loss_state"
#: The ramp shapes.
RAMP_TYPES = ("linear", "cosine")
_RAMP_KEYS = ("type", "end", "start", "warmup_frac", "steps")


def split_path(path: str) -> list[str]:
    """``"weights.distill"`` -> ``["weights", "distill"]``."""
    return path.split(".")


def leaf(state: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``state``; ``KeyError`` naming what is there."""
    node: Any = state
    walked: list[str] = []
    for key in split_path(path):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(walked) or "the top level"
            have = ", ".join(sorted(map(str, node))) if isinstance(node, Mapping) else "no keys"
            raise KeyError(f"loss state has no {path!r} ({where} has: {have})")
        node, walked = node[key], [*walked, key]
    return node


def _paths(params: Mapping[str, Any], state: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        here = f"{prefix}{key}"
        if not prefix and key == "ramps" and isinstance(value, Mapping):
            out.update({f"ramps.{name}": spec for name, spec in value.items()})
        elif not prefix and key.endswith("_w") and key not in state:
            out[f"weights.{key[:-2]}"] = value
        elif isinstance(value, Mapping):
            node = state.get(key) if isinstance(state, Mapping) else None
            if not isinstance(node, Mapping):
                out[here] = value  # refused below: not a node of the state
            else:
                out.update(_paths(value, node, f"{here}."))
        else:
            out[here] = value
    return out


def _same_kind(path: str, old: Any, new: Any) -> Any:
    if isinstance(old, bool):
        if not isinstance(new, bool):
            raise ValueError(f"{path} is true/false, got {new!r}")
        return new
    if isinstance(old, (int, float)):
        if isinstance(new, bool) or not isinstance(new, (int, float)) or not math.isfinite(new):
            raise ValueError(f"{path} is a number, got {new!r}")
        return float(new) if isinstance(old, float) else new
    if isinstance(old, Mapping):
        raise ValueError(f"{path} is a section of the loss state: set its keys ({path}.KEY=...)")
    if old is not None and type(new) is not type(old):
        raise ValueError(f"{path} is a {type(old).__name__}, got {new!r}")
    return new


def check_ramp(name: str, spec: Any) -> dict[str, Any] | None:
    """A checked ramp spec (None: stop the ramp).

    >>> check_ramp("depth", {"type": "linear", "warmup_frac": 0.2, "end": 2.0})
    {'type': 'linear', 'end': 2.0, 'warmup_frac': 0.2}
    """
    if spec is None:
        return None
    where = f"ramps.{name}"
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"{where} must be {{type: linear, end: X, warmup_frac: F}} (or steps: N), got {spec!r}"
        )
    unknown = sorted(set(spec) - set(_RAMP_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a ramp has {', '.join(_RAMP_KEYS)}"
        )
    kind = spec.get("type", "linear")
    if kind not in RAMP_TYPES:
        raise ValueError(f"{where}.type must be one of {', '.join(RAMP_TYPES)}, got {kind!r}")
    out: dict[str, Any] = {"type": kind}
    for key in ("end", "start"):
        if key in spec:
            value = spec[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise ValueError(f"{where}.{key} must be a number, got {value!r}")
            out[key] = float(value)
    if "end" not in out:
        raise ValueError(f"{where} needs end: the weight the ramp arrives at")
    if ("warmup_frac" in spec) == ("steps" in spec):
        raise ValueError(
            f"{where} needs warmup_frac (a fraction of the run's total steps) or steps (a "
            "number of steps), one of them"
        )
    if "warmup_frac" in spec:
        frac = spec["warmup_frac"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac <= 1:
            raise ValueError(f"{where}.warmup_frac must be a number in (0, 1], got {frac!r}")
        out["warmup_frac"] = float(frac)
    else:
        steps = spec["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{where}.steps must be an integer >= 1, got {steps!r}")
        out["steps"] = steps
    return out


def check_change(
    params: Mapping[str, Any], state: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, dict[str, Any] | None]]:
    """The leaves to set (dotted path -> value) and the ramps to start or stop (weight
    name -> spec or None), checked against ``state``. Raises ``ValueError``."""
    if not params:
        raise ValueError("nothing to set: give e.g. distill_w=0.2 or terms.aux=false")
    sets: dict[str, Any] = {}
    ramps: dict[str, dict[str, Any] | None] = {}
    for path, value in _paths(params, state).items():
        if path.startswith("ramps.") and path.count(".") == 1:
            name = path.removeprefix("ramps.")
            try:
                old = leaf(state, f"weights.{name}")
            except KeyError as exc:
                raise ValueError(f"ramps.{name} ramps weights.{name}, but {exc.args[0]}") from None
            if isinstance(old, bool) or not isinstance(old, (int, float)):
                raise ValueError(f"weights.{name} is not a number, it cannot be ramped")
            ramps[name] = check_ramp(name, value)
            continue
        try:
            old = leaf(state, path)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        sets[path] = _same_kind(path, old, value)
    return sets, ramps
