"""To a plain Python scalar: the one helper hotcb uses wherever a value from the
training loop (a loss tensor, a numpy number, ...) is logged, compared or written.

Example:
    >>> import torch
    >>> to_scalar(torch.tensor(0.5)), to_scalar(3), to_scalar("x")
    (0.5, 3, 'x')
    >>> to_scalar(torch.ones(2))  # more than one element: left as it is
    tensor([1., 1.])
"""

from __future__ import annotations

from typing import Any

from hotcb.interrupts import is_user_interrupt

__all__ = ["to_scalar"]


def to_scalar(value: Any) -> Any:
    """``value.item()`` for a one-element tensor or array (anything with a callable
    ``item``, and a ``numel()`` of 1 if it has one); anything else, including a value
    whose ``item()`` raises, is returned unchanged. Never raises, except the user's
    Ctrl-C."""
    try:
        item = getattr(value, "item", None)
        if not callable(item):
            return value
        numel = getattr(value, "numel", None)
        if callable(numel) and numel() != 1:
            return value
        return item()
    except BaseException as exc:  # SystemExit too: the value is only being logged
        if is_user_interrupt(exc):
            raise
        return value
