"""The callback protocol: the one thing a hot callback must implement.

A hot callback is any object with an ``id``, a ``handle(event, env)`` method and a
``set_params(**kwargs)`` method. Two methods are optional: ``on_attach(env)`` runs once
before the first ``handle`` (each time the callback is loaded, reloaded or re-enabled),
and ``close()`` runs when it is unloaded, replaced or the run ends.

Example:
    >>> class PrintLoss:
    ...     def __init__(self, id: str = "print_loss", every: int = 10) -> None:
    ...         self.id, self.every = id, every
    ...     def handle(self, event: str, env: dict) -> None:
    ...         if event == "train_step_end" and env["step"] % self.every == 0:
    ...             env["log"](f"[{self.id}] step={env['step']} loss={env['loss']:.4f}")
    ...     def set_params(self, **kwargs) -> None:
    ...         self.every = int(kwargs.get("every", self.every))
    >>> isinstance(PrintLoss(), HotCallback)
    True
    >>> PrintLoss().handle("train_step_end", {"step": 10, "loss": 0.5, "log": print})
    [print_loss] step=10 loss=0.5000

``set_params`` should validate every value before changing anything and raise
``ValueError`` / ``TypeError`` with a clear message on a bad one: the controller then
records the op as failed and the callback keeps its previous values.

``handle`` is called on the training thread at every event the loop emits; keep it
cheap when there is nothing to do (check the step first, allocate nothing).

Under multi-process training a callback that only logs should run on rank 0: give the
class ``rank_zero_only = True`` (the built-in loggers do), or set the reserved key
``_rank_zero_only_: true`` in its config node / ``--init`` (it overrides the attribute and
can be changed live with ``hotcb cb set <id> _rank_zero_only_=false``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["RANK_ZERO_ONLY_KEY", "Env", "HotCallback", "is_rank_zero_only"]

#: What the training loop passes to every callback: ``step``, ``epoch``, ``loss``,
#: ``model``, ``optimizer``, ``log`` (a ``print``-like callable) and anything else.
Env = dict[str, Any]

#: Reserved init / param key: run this callback on rank 0 only (never passed to it).
RANK_ZERO_ONLY_KEY = "_rank_zero_only_"


def is_rank_zero_only(instance: Any, override: bool | None = None) -> bool:
    """Whether ``instance`` runs on rank 0 only: ``override`` if given, else its
    ``rank_zero_only`` attribute (default False).

    >>> class Logger:
    ...     rank_zero_only = True
    >>> is_rank_zero_only(Logger()), is_rank_zero_only(Logger(), override=False)
    (True, False)
    """
    if override is not None:
        return bool(override)
    return bool(getattr(instance, "rank_zero_only", False))


@runtime_checkable
class HotCallback(Protocol):
    """A live-swappable training callback. See the module docstring for an example."""

    id: str

    def handle(self, event: str, env: Env) -> None:
        """React to ``event`` (e.g. ``"train_step_end"``) with the loop's ``env``."""
        ...

    def set_params(self, **kwargs: Any) -> None:
        """Change hot parameters; raise ``ValueError``/``TypeError`` to reject them."""
        ...
