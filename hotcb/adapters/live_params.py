"""What ``hotcb cb set`` may change on a wrapped trainer callback, and what it means.

A wrapped Lightning ``Callback`` or HF ``TrainerCallback`` has no ``set_params`` of its
own: hotcb sets its attributes. A class named in :data:`RULES` has a table of the
parameters that can change live (the constructor's names, so an export writes
``callbacks.<id>.<name>=value``), each with a check and a one-line meaning; the others
are refused (:data:`REFUSED`: changing them mid-run would mix old and new results). Any
other class: its public attributes that hold a plain value (bool, int, float, str,
None) can be set to a value of the same type; anything else is refused.

Nothing changes unless every value is valid (the op is then recorded as failed and the
callback keeps its values); the instance is never rebuilt, so its state (best score,
wait count, saved checkpoints: its ``state_dict``) is kept across a set.

Example:
    >>> class Toy:
    ...     def __init__(self): self.every, self.name, self.items = 2, "a", []
    >>> toy = Toy()
    >>> set_live(toy, {"every": 5})
    >>> toy.every
    5
    >>> set_live(toy, {"items": [1]})
    Traceback (most recent call last):
    ...
    ValueError: Toy.items cannot be set live (a list); settable: every, name
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REFUSED", "RULES", "LiveParam", "set_live", "settable"]

_PLAIN = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class LiveParam:
    """One live parameter: ``check(value)`` returns the value to store (or raises
    ``ValueError``), stored at ``attribute``; ``meaning`` is what the change does."""

    attribute: str
    check: Callable[[Any, Any], Any]
    meaning: str


def _int_at_least(low: int) -> Callable[[Any, Any], Any]:
    def check(value: Any, _instance: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"must be an int >= {low}, got {value!r}")
        return value

    return check


def _boolean(value: Any, _instance: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _optional_float(value: Any, _instance: Any) -> Any:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"must be a number or null, got {value!r}")
    return None if value is None else float(value)


def _min_delta(value: Any, instance: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    # EarlyStopping keeps min_delta signed by its mode (negative when it minimises)
    return abs(float(value)) if getattr(instance, "mode", "min") == "max" else -abs(float(value))


def _one_of(*choices: Any) -> Callable[[Any, Any], Any]:
    def check(value: Any, _instance: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return check


_SUMMARY_DEPTH = LiveParam(
    "_max_depth", _int_at_least(-1), "the depth of the next summary (printed at fit start)"
)

#: ``module.qualname`` (or class name) -> its live parameters.
RULES: dict[str, dict[str, LiveParam]] = {
    "EarlyStopping": {
        "patience": LiveParam(
            "patience",
            _int_at_least(0),
            "checks without improvement before stopping; the wait count so far is kept",
        ),
        "min_delta": LiveParam(
            "min_delta", _min_delta, "the improvement that counts, from the next check on"
        ),
        "stopping_threshold": LiveParam(
            "stopping_threshold", _optional_float, "stop once the monitored value reaches it"
        ),
        "divergence_threshold": LiveParam(
            "divergence_threshold", _optional_float, "stop once the value is worse than it"
        ),
        "check_finite": LiveParam("check_finite", _boolean, "stop on a NaN or inf value"),
        "verbose": LiveParam("verbose", _boolean, "log each check"),
        "strict": LiveParam("strict", _boolean, "fail when the monitored metric is missing"),
    },
    "ModelCheckpoint": {
        "every_n_epochs": LiveParam(
            "_every_n_epochs",
            _int_at_least(0),
            "save at the end of every N-th epoch from the next one on (0: not by epoch)",
        ),
        "every_n_train_steps": LiveParam(
            "_every_n_train_steps",
            _int_at_least(0),
            "save every N optimizer steps from the next step on (0: not by step)",
        ),
        "save_top_k": LiveParam(
            "save_top_k",
            _int_at_least(-1),
            "how many best checkpoints to keep; applies at the next save (-1: all)",
        ),
        "save_last": LiveParam(
            "save_last", _one_of(True, False, None, "link"), "also write last.ckpt at each save"
        ),
        "verbose": LiveParam("verbose", _boolean, "log each save"),
    },
    "LearningRateMonitor": {
        "logging_interval": LiveParam(
            "logging_interval", _one_of("step", "epoch", None), "log per step or per epoch"
        ),
        "log_momentum": LiveParam("log_momentum", _boolean, "also log the momentum (a column)"),
        "log_weight_decay": LiveParam("log_weight_decay", _boolean, "also log the weight decay"),
    },
    "ModelSummary": {"max_depth": _SUMMARY_DEPTH},
    "RichModelSummary": {"max_depth": _SUMMARY_DEPTH},
    "EarlyStoppingCallback": {  # transformers
        "early_stopping_patience": LiveParam(
            "early_stopping_patience",
            _int_at_least(1),
            "evaluations without improvement before stopping; the count so far is kept",
        ),
        "early_stopping_threshold": LiveParam(
            "early_stopping_threshold",
            _optional_float,
            "the improvement that counts, from the next evaluation on",
        ),
    },
}

#: class name -> parameter -> why it cannot change mid-run.
REFUSED: dict[str, dict[str, str]] = {
    "EarlyStopping": {
        "monitor": "the best score so far was measured on the old metric",
        "mode": "the best score so far was measured in the old direction",
    },
    "ModelCheckpoint": {
        "monitor": "the kept checkpoints were ranked by the old metric",
        "mode": "the kept checkpoints were ranked in the old direction",
        "dirpath": "the checkpoints saved so far would be left in the old directory",
        "filename": "the kept checkpoints are tracked by their old names",
        "save_weights_only": "resuming would mix full and weights-only checkpoints",
        "train_time_interval": "a time trigger is fixed when the trainer starts",
    },
}


def _rules(instance: Any) -> tuple[dict[str, LiveParam] | None, dict[str, str]]:
    for cls in type(instance).__mro__:
        if cls.__name__ in RULES or cls.__name__ in REFUSED:
            return RULES.get(cls.__name__), REFUSED.get(cls.__name__, {})
    return None, {}


def settable(instance: Any) -> dict[str, str]:
    """Parameter -> its meaning, for what :func:`set_live` accepts on ``instance``.

    >>> class Toy:
    ...     def __init__(self): self.every, self._private = 2, 0
    >>> settable(Toy())
    {'every': 'an attribute (int)'}
    """
    rules, _ = _rules(instance)
    if rules is not None:
        return {name: rule.meaning for name, rule in rules.items()}
    return {
        name: f"an attribute ({type(value).__name__})"
        for name, value in vars(instance).items()
        if not name.startswith("_") and isinstance(value, _PLAIN)
    }


def _generic(instance: Any, name: str, value: Any) -> Any:
    cls = type(instance).__name__
    current = vars(instance).get(name, _MISSING)
    if current is _MISSING or name.startswith("_"):
        raise ValueError(
            f"{cls} has no attribute {name!r} to set; settable: {', '.join(settable(instance))}"
        )
    if not isinstance(current, _PLAIN):
        raise ValueError(
            f"{cls}.{name} cannot be set live ({_article(type(current).__name__)}); "
            f"settable: {', '.join(settable(instance))}"
        )
    numeric = (int, float)
    same = type(value) is type(current) or (
        isinstance(current, float) and isinstance(value, numeric) and not isinstance(value, bool)
    )
    if current is not None and value is not None and not same:
        raise ValueError(f"{cls}.{name} is {_article(type(current).__name__)}, got {value!r}")
    return value


_MISSING = object()


def _article(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def set_live(instance: Any, params: Mapping[str, Any]) -> None:
    """Check every value of ``params`` for ``instance``, then set them all (or none).

    Raises ``ValueError`` naming the parameter, what it takes and, for a refused one, why.
    """
    rules, refused = _rules(instance)
    cls = type(instance).__name__
    staged: list[tuple[str, Any]] = []
    for name, value in params.items():
        if name in refused:
            raise ValueError(f"{cls}.{name} cannot change mid-run: {refused[name]}")
        if rules is None:
            staged.append((name, _generic(instance, name, value)))
            continue
        rule = rules.get(name)
        if rule is None:
            raise ValueError(
                f"{cls} has no live parameter {name!r}; live: {', '.join(rules) or 'none'}"
            )
        try:
            staged.append((rule.attribute, rule.check(value, instance)))
        except ValueError as exc:
            raise ValueError(f"{cls}.{name} {exc}") from None
    _check_combination(instance, staged)
    for attribute, value in staged:
        setattr(instance, attribute, value)


def _check_combination(instance: Any, staged: list[tuple[str, Any]]) -> None:
    """ModelCheckpoint's triggers are exclusive: one of steps, epochs, time."""
    names = ("_every_n_train_steps", "_every_n_epochs", "_train_time_interval")
    if not any(attribute in names for attribute, _ in staged):
        return
    after = {n: getattr(instance, n, None) for n in names} | dict(staged)
    active = [n.strip("_") for n in names if after[n]]
    if len(active) > 1:
        raise ValueError(
            f"{type(instance).__name__}: {' and '.join(active)} are exclusive; set the other "
            "to 0 in the same command"
        )
