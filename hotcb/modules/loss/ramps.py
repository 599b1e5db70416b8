"""Ramps: a loss weight moved from where it is to ``end`` over a number of steps.

A ramp set at step ``s0`` on a weight whose value is then ``v0`` (or ``start``) runs for
``length`` steps: ``steps`` as given, or ``warmup_frac`` times the run's total steps
(``env["total_steps"]``, which the loop must provide for a ``warmup_frac`` ramp). At step
``s`` the weight is ``v0 + (end - v0) * f(t)``, ``t = (s - s0) / length`` clipped to [0, 1],
``f(t) = t`` (linear) or ``(1 - cos(pi t)) / 2`` (cosine); from ``s0 + length`` on it is
``end`` and the ramp is done.

Example:
    >>> ramp = Ramp(weight="depth", kind="linear", start=0.0, end=2.0, start_step=100, length=50)
    >>> [ramp.value(step) for step in (100, 125, 150, 400)]
    [0.0, 1.0, 2.0, 2.0]
    >>> Ramp.from_dict(ramp.to_dict()) == ramp
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Ramp"]


@dataclass(frozen=True)
class Ramp:
    """One running ramp of ``weights.<weight>``."""

    weight: str
    kind: str
    start: float
    end: float
    start_step: int
    length: int

    def value(self, step: int) -> float:
        """The weight at ``step``."""
        t = min(1.0, max(0.0, (step - self.start_step) / self.length))
        f = t if self.kind == "linear" else (1 - math.cos(math.pi * t)) / 2
        return self.start + (self.end - self.start) * f

    def done(self, step: int) -> bool:
        """True from the step the ramp reaches ``end``."""
        return step >= self.start_step + self.length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ramp:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
