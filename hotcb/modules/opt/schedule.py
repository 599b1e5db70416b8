"""Keep an LR scheduler consistent with an ``lr`` set by hand, so the schedule continues
from the new value instead of overwriting it at its next ``step()``.

Setting group ``i``'s lr from ``old`` to ``new`` multiplies that group's whole schedule by
``s = new / old`` (``old`` is the lr now; when it is 0, the group's ``initial_lr`` is used):
``base_lrs[i]``, the group's ``initial_lr`` / ``max_lr`` / ``min_lr`` (OneCycleLR keeps its
phases there), ``max_lrs[i]`` (CyclicLR), ``eta_min`` (cosine schedules; scaled only when
every group gets the same factor, since it is one number for all) and ``_last_lr``. The
same is done for the schedulers inside a ``SequentialLR`` / ``ChainedScheduler``. What
that means for the schedulers torch ships (tests/modules/opt/test_schedule.py checks each):

=====================  ==================================================================
scheduler              after ``lr=new`` (factor ``s``)
=====================  ==================================================================
LambdaLR, MultiplicativeLR  ``base_lr * lambda(t)``: every later lr is ``s`` times what it
                       would have been
StepLR, MultiStepLR,   chained from the group's lr: keeps decaying from ``new`` at the same
ExponentialLR          steps (``s`` times the old curve)
CosineAnnealingLR      ``s`` times the old curve (``eta_min`` scaled too when all groups
                       change by one factor; else that group's floor stays)
OneCycleLR             ``initial_lr``, ``max_lr``, ``min_lr`` scaled: the rest of the cycle is
                       ``s`` times the old one
ReduceLROnPlateau      the next reduction multiplies ``new`` by ``factor``; ``min_lrs`` (a
                       floor, not a schedule) is kept
=====================  ==================================================================

Duck-typed: nothing here imports torch.

Example:
    >>> class Sched:  # what LambdaLR keeps
    ...     base_lrs, _last_lr = [0.1], [0.05]
    >>> groups = [{"lr": 0.05, "initial_lr": 0.1}]
    >>> rescale(Sched(), groups, {0: 0.01})
    >>> groups[0], Sched.base_lrs, Sched._last_lr
    ({'lr': 0.01, 'initial_lr': 0.02}, [0.02], [0.01])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

__all__ = ["rescale", "schedulers"]

#: Param-group keys some schedulers keep their lr schedule in.
_GROUP_KEYS = ("initial_lr", "max_lr", "min_lr")
#: Per-group lists of lr values a scheduler keeps (ReduceLROnPlateau's min_lrs is a floor).
_LIST_ATTRS = ("base_lrs", "max_lrs")


def schedulers(scheduler: Any) -> Iterator[Any]:
    """``scheduler`` and those it wraps (SequentialLR, ChainedScheduler)."""
    yield scheduler
    for inner in getattr(scheduler, "_schedulers", None) or ():
        yield from schedulers(inner)


def rescale(
    scheduler: Any, groups: Sequence[MutableMapping[str, Any]], new_lrs: Mapping[int, float]
) -> None:
    """Set ``groups[i]["lr"] = new_lrs[i]`` and scale ``scheduler``'s state for group ``i``
    by the same factor (``scheduler`` None: just set the lrs)."""
    factors: dict[int, float] = {}
    for i, new in new_lrs.items():
        old = float(groups[i]["lr"])
        if old == 0:
            old = float(groups[i].get("initial_lr") or 0)
        factors[i] = new / old if old else 1.0
    uniform = len(factors) == len(groups) and len(set(factors.values())) == 1
    for i, new in new_lrs.items():
        group, s = groups[i], factors[i]
        group["lr"] = new
        if scheduler is None:
            continue
        for key in _GROUP_KEYS:
            if isinstance(group.get(key), (int, float)):
                group[key] = group[key] * s
    if scheduler is None:
        return
    for sched in schedulers(scheduler):
        for attr in _LIST_ATTRS:
            values = getattr(sched, attr, None)
            if isinstance(values, list):
                for i, s in factors.items():
                    if i < len(values):
                        values[i] = values[i] * s
        last = getattr(sched, "_last_lr", None)
        if isinstance(last, list):
            for i, new in new_lrs.items():
                if i < len(last):
                    last[i] = new
        eta_min = getattr(sched, "eta_min", None)
        if uniform and isinstance(eta_min, (int, float)) and not isinstance(eta_min, bool):
            sched.eta_min = eta_min * next(iter(factors.values()))
