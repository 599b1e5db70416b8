"""Any Hugging Face ``TrainerCallback`` as a hot callback: :class:`HFCallbackAdapter`.

``hotcb cb load es --path transformers --symbol EarlyStoppingCallback`` (or the class as a
``hotcb.callbacks`` node) builds it and wraps it; :class:`~hotcb.adapters.hf.HotHFCallback`
forwards every ``TrainerCallback`` hook the class overrides with its real arguments
(``args, state, control, **kwargs``) as the event ``hf:<hook>``. ``cb set`` sets its
attributes (:mod:`hotcb.adapters.live_params`), enable/disable/unload work, and the
instance (with its state) is kept across a set.

Example:
    >>> from transformers import EarlyStoppingCallback
    >>> cb = wrap(EarlyStoppingCallback(early_stopping_patience=2), "es")
    >>> sorted(cb.events)
    ['hf:on_evaluate', 'hf:on_train_begin']
    >>> cb.set_params(early_stopping_patience=4); cb.callback.early_stopping_patience
    4
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from hotcb.adapters.live_params import set_live

__all__ = ["HOOKS", "PREFIX", "HFCallbackAdapter", "overridden_hooks", "wrap"]

#: The prefix of the events that carry a forwarded ``TrainerCallback`` hook.
PREFIX = "hf:"
#: Every hook of ``TrainerCallback``.
HOOKS: tuple[str, ...] = tuple(name for name in vars(TrainerCallback) if name.startswith("on_"))


def overridden_hooks(cls: type) -> frozenset[str]:
    """The hooks ``cls`` overrides (read from the class, not called)."""
    return frozenset(h for h in HOOKS if getattr(cls, h, None) is not getattr(TrainerCallback, h))


class HFCallbackAdapter:
    """A ``TrainerCallback`` under hotcb's control (see the module docstring)."""

    def __init__(self, callback: TrainerCallback, id: str) -> None:
        self.callback = callback
        self.id = id
        hooks = overridden_hooks(type(callback))
        self.events = frozenset(PREFIX + h for h in hooks) or {PREFIX + "none"}

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event.startswith(PREFIX):
            args, kwargs = env["hook_args"], env["hook_kwargs"]
            getattr(self.callback, event[len(PREFIX) :])(*args, **kwargs)

    def set_params(self, **kwargs: Any) -> None:
        set_live(self.callback, kwargs)


def wrap(callback: TrainerCallback, id: str) -> HFCallbackAdapter:
    """The hot callback for a ``TrainerCallback`` built by a load."""
    return HFCallbackAdapter(callback, id)
