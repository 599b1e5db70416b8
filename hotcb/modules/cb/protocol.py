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

Loading runs nothing the rule does not allow: a load target must be a class that has
``handle`` and ``set_params`` (checked on the class, before it is called), or a factory
marked with :func:`hot_factory` (or listed in the kernel's ``allowed_factories``).

``set_params`` should validate every value before changing anything and raise
``ValueError`` / ``TypeError`` with a clear message on a bad one: the controller then
records the op as failed and the callback keeps its previous values.

``handle`` is called on the training thread at every event the loop emits; keep it
cheap when there is nothing to do (check the step first, allocate nothing).

A callback may declare the events it handles with an ``events`` attribute (a class
attribute, or an instance attribute set in ``__init__`` / ``set_params``): a collection of
event names, e.g. ``events = ("train_step_end",)``. The controller then calls its
``handle`` for those events only. ``None`` or no ``events`` attribute at all means every
event, as before. The declaration is read at load, reload and after each applied ``set``
(never per step), so events that are a hot parameter stay exact. ``handle`` should still
check the event, since it may be called directly. A declaration that is not a non-empty
collection of strings refuses the load with a clear error: ``events`` is a reserved name
(a callback that keeps, say, a list of the events it saw must call it something else).

Under multi-process training a callback that only logs should run on rank 0: give the
class ``rank_zero_only = True`` (the built-in loggers do), or set the reserved key
``_rank_zero_only_: true`` in its config node / ``--init`` (it overrides the attribute and
can be changed live with ``hotcb cb set <id> _rank_zero_only_=false``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

# what the loop passes to every callback; defined with the kernel modules, public here too
from hotcb.modules.base import Env

__all__ = [
    "EVENTS_ATTR",
    "HOT_FACTORY_MARK",
    "PROTOCOL_METHODS",
    "RANK_ZERO_ONLY_KEY",
    "Env",
    "HotCallback",
    "declared_events",
    "hot_factory",
    "is_hot_factory",
    "is_rank_zero_only",
]

F = TypeVar("F", bound=Callable[..., Any])


#: Reserved init / param key: run this callback on rank 0 only (never passed to it).
RANK_ZERO_ONLY_KEY = "_rank_zero_only_"
#: The methods a callback class must have (on the class itself or a base class).
PROTOCOL_METHODS = ("handle", "set_params")
#: The attribute :func:`hot_factory` sets.
HOT_FACTORY_MARK = "__hotcb_factory__"


def hot_factory(func: F) -> F:
    """Mark ``func`` as a callback factory, so hotcb may load it as a target.

    A load target is normally a class with ``handle`` and ``set_params``. A function (or
    any other callable) is loaded only when it carries this mark: hotcb never calls a
    target just to find out what it returns.

    >>> @hot_factory
    ... def make_printer(id: str = "printer", every: int = 10):
    ...     return build_printer(id, every)  # returns an object with handle and set_params
    >>> is_hot_factory(make_printer)
    True
    """
    setattr(func, HOT_FACTORY_MARK, True)
    return func


def is_hot_factory(obj: object) -> bool:
    """Whether ``obj`` was marked with :func:`hot_factory` (read without running its code).

    >>> import timeit
    >>> is_hot_factory(timeit.timeit), is_hot_factory(print)
    (False, False)
    """
    try:
        return inspect.getattr_static(obj, HOT_FACTORY_MARK, False) is True
    except Exception:
        return False


#: The attribute in which a callback declares the events it handles (see the module doc).
EVENTS_ATTR = "events"


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


def declared_events(instance: Any) -> frozenset[str] | None:
    """The events ``instance`` declares it handles, or None when it declares none (it
    then gets every event).

    It must be None or a non-empty tuple, list, set or frozenset of event names;
    anything else raises ``TypeError`` saying so. (Read with plain ``getattr``: looking
    at the instance's ``__dict__`` would slow every later attribute access of the
    callback on CPython 3.11+.)

    >>> class Stepper:
    ...     events = ("train_step_end", "val_end")
    >>> sorted(declared_events(Stepper()))
    ['train_step_end', 'val_end']
    >>> declared_events(object()) is None
    True
    >>> class Recorder:
    ...     def __init__(self) -> None:
    ...         self.events = []
    >>> declared_events(Recorder())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: Recorder.events declares no event, so it would never be called; ...
    """
    events = getattr(instance, EVENTS_ATTR, None)
    if events is None:
        return None
    owner = f"{type(instance).__name__}.{EVENTS_ATTR}"
    if not isinstance(events, (tuple, list, set, frozenset)) or not all(
        isinstance(event, str) for event in events
    ):
        raise TypeError(
            f"{owner} must be None (every event) or a tuple, list or set of event names, "
            f"got {events!r}"
        )
    if not events:
        raise TypeError(
            f"{owner} declares no event, so it would never be called; hotcb reads "
            f"`{EVENTS_ATTR}` as the events a callback handles (None or absent: every "
            "event): name at least one event, or rename the attribute"
        )
    return frozenset(events)


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
