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
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Env", "HotCallback"]

#: What the training loop passes to every callback: ``step``, ``epoch``, ``loss``,
#: ``model``, ``optimizer``, ``log`` (a ``print``-like callable) and anything else.
Env = dict[str, Any]


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
