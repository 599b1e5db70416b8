"""Any Lightning ``Callback`` as a hot callback: :class:`LightningCallbackAdapter`.

``hotcb cb load lrm --path lightning.pytorch.callbacks --symbol LearningRateMonitor`` (or
the same class as a ``hotcb.callbacks`` node) builds the class and wraps it. The
controller (:class:`~hotcb.adapters.lightning.HotCallbackController`) forwards every
Lightning hook the class overrides, with its real arguments, as the event
``pl:<hook>`` (env ``hook_args``): the wrapper declares exactly those events. Loaded while
the trainer runs, its ``setup``, ``on_fit_start`` and ``on_train_start`` run first (on
attach) so it starts as if it had been there from the beginning. ``cb set`` sets its
attributes (:mod:`hotcb.adapters.live_params` says which and what a change means);
``disable`` stops the forwarding, ``enable`` resumes it, ``unload`` drops it. The
instance is kept across a set, and with it its state (``state_dict``).

Adopted callbacks (``hotcb.adopt: [early_stopping]``) are the trainer's own, built from
the app's ``callbacks`` config: Lightning keeps calling them (``trainer.checkpoint_callback``
and the rest keep working) and hotcb only sets their parameters. They are loaded through
:func:`adopted` and exported as ``callbacks.<id>.<name>=value``.

Example:
    >>> from lightning.pytorch.callbacks import EarlyStopping
    >>> cb = wrap(EarlyStopping(monitor="val_loss", patience=3), "early_stopping")
    >>> sorted(cb.events)[:2]
    ['pl:on_train_epoch_end', 'pl:on_validation_end']
    >>> cb.set_params(patience=5); cb.callback.patience
    5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch import Callback

from hotcb.adapters.live_params import set_live, settable
from hotcb.modules.cb.protocol import hot_factory

__all__ = [
    "ADOPTED_SYMBOL",
    "HOOKS",
    "PREFIX",
    "LightningCallbackAdapter",
    "adoptable",
    "adopted",
    "overridden_hooks",
    "wrap",
]

#: The prefix of the events that carry a forwarded Lightning hook.
PREFIX = "pl:"
#: The hooks forwarded (all of ``Callback``'s, but ``state_dict`` / ``load_state_dict``,
#: which the controller forwards itself).
HOOKS: tuple[str, ...] = tuple(
    name
    for name in vars(Callback)
    if (name.startswith("on_") or name in ("setup", "teardown")) and callable(vars(Callback)[name])
)
#: The factory adopted callbacks are loaded through (``module.symbol``).
ADOPTED_SYMBOL = f"{__name__}.adopted"
#: An event nothing emits: what an adopted callback declares (Lightning calls it itself).
_NO_EVENT = "pl:adopted"
_STARTUP = ("setup", "on_fit_start", "on_train_start")

#: ``callbacks.<id>`` -> the trainer's instance, filled by the controller before its kernel
#: starts (a process-local registry: adopted callbacks are never built by hotcb).
_ADOPTABLE: dict[str, Callback] = {}


def overridden_hooks(cls: type) -> frozenset[str]:
    """The hooks of :data:`HOOKS` that ``cls`` overrides (read from the class, not called).

    >>> from lightning.pytorch.callbacks import LearningRateMonitor
    >>> sorted(overridden_hooks(LearningRateMonitor))
    ['on_train_batch_start', 'on_train_epoch_start', 'on_train_start']
    """
    return frozenset(h for h in HOOKS if getattr(cls, h, None) is not getattr(Callback, h))


class LightningCallbackAdapter:
    """A Lightning callback under hotcb's control (see the module docstring).

    Args:
        callback: the Lightning callback instance.
        id: its hotcb id.
        adopted_key: ``callbacks.<id>`` for a callback the trainer owns (adopted).
    """

    def __init__(self, callback: Callback, id: str, adopted_key: str | None = None) -> None:
        self.callback = callback
        self.id = id
        self.adopted_key = adopted_key
        hooks = overridden_hooks(type(callback))
        self.events = (
            frozenset(PREFIX + h for h in hooks) if hooks and adopted_key is None else {_NO_EVENT}
        )
        self._started = adopted_key is not None
        #: start-up hooks run on attach, not to be run again when the trainer forwards them
        self._replayed: set[str] = set()

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event.startswith(PREFIX):
            hook = event[len(PREFIX) :]
            if hook in self._replayed:
                self._replayed.discard(hook)
                return
            getattr(self.callback, hook)(*env["hook_args"], **env.get("hook_kwargs", {}))

    def on_attach(self, env: dict[str, Any]) -> None:
        """First attach inside a running fit: run the start-up hooks it missed."""
        trainer, module = env.get("trainer"), env.get("model")
        if self._started or trainer is None or module is None:
            return
        self._started = True
        hooks = overridden_hooks(type(self.callback))
        for hook in _STARTUP:
            if hook in hooks:
                args = (trainer, module, "fit") if hook == "setup" else (trainer, module)
                getattr(self.callback, hook)(*args)
                self._replayed.add(hook)

    def set_params(self, **kwargs: Any) -> None:
        set_live(self.callback, kwargs)

    def refuse_op(self, op: str) -> str | None:
        """Why ``op`` cannot apply (None: it can): an adopted callback only takes ``set``."""
        if self.adopted_key is None or op == "set":
            return None
        return (
            f"{self.id!r} is the trainer's own callback ({self.adopted_key}), adopted for live "
            f"`set` only; {op} would change what Lightning runs. Remove it from the callbacks "
            "config for the next run instead"
        )

    def describe(self) -> dict[str, str]:
        """The live parameters and what a change means."""
        return settable(self.callback)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.callback.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.callback.load_state_dict(dict(state))


def wrap(callback: Callback, id: str) -> LightningCallbackAdapter:
    """The hot callback for a Lightning callback built by a load."""
    return LightningCallbackAdapter(callback, id)


def adoptable(key: str, callback: Callback) -> None:
    """Offer the trainer's ``callback`` (config key ``callbacks.<id>``) for adoption."""
    _ADOPTABLE[key] = callback


@hot_factory
def adopted(id: str, key: str) -> LightningCallbackAdapter:
    """The hot callback for the trainer's own callback at config key ``key``."""
    try:
        callback = _ADOPTABLE[key]
    except KeyError:
        raise LookupError(
            f"no trainer callback to adopt at {key!r} in this process (have: "
            f"{', '.join(sorted(_ADOPTABLE)) or 'none'})"
        ) from None
    return LightningCallbackAdapter(callback, id, adopted_key=key)
