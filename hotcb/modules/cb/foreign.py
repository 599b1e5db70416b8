"""Trainer callbacks hotcb wraps: a Lightning ``Callback`` or an HF ``TrainerCallback``.

A class that is not a hot callback but derives from one of the framework bases named in
:data:`FOREIGN_BASES` is a recognised kind of load target (the target rule, decided from
what the class *is*: its base classes, looked up by name, nothing imported or called).
hotcb builds it and wraps it in the adapter that forwards that framework's hooks with
their real arguments (:data:`WRAPPERS`): ``hotcb.adapters.lightning_callbacks`` or
``hotcb.adapters.hf_callbacks``.

Example:
    >>> class NotOne:
    ...     pass
    >>> foreign_kind(NotOne) is None
    True
    >>> sorted(set(FOREIGN_BASES.values()))
    ['hf', 'lightning']
"""

from __future__ import annotations

__all__ = ["FOREIGN_BASES", "WRAPPERS", "foreign_kind", "kind_name"]

#: ``module.qualname`` of a framework base class -> the kind of callback it makes.
FOREIGN_BASES: dict[str, str] = {
    "lightning.pytorch.callbacks.callback.Callback": "lightning",
    "pytorch_lightning.callbacks.callback.Callback": "lightning",
    "transformers.trainer_callback.TrainerCallback": "hf",
}

#: kind -> ``(module, function)`` that wraps an instance: ``wrap(instance, id) -> callback``.
WRAPPERS: dict[str, tuple[str, str]] = {
    "lightning": ("hotcb.adapters.lightning_callbacks", "wrap"),
    "hf": ("hotcb.adapters.hf_callbacks", "wrap"),
}

_NAMES = {"lightning": "a Lightning Callback", "hf": "a Hugging Face TrainerCallback"}


def foreign_kind(cls: object) -> str | None:
    """``"lightning"`` / ``"hf"`` for a subclass of a framework callback base, else None.

    Only the class's MRO names are read: no import, no attribute of ``cls`` is run.
    """
    if not isinstance(cls, type):
        return None
    for base in cls.__mro__:
        kind = FOREIGN_BASES.get(f"{base.__module__}.{base.__qualname__}")
        if kind is not None:
            return kind
    return None


def kind_name(kind: str) -> str:
    """How a refusal or a status line names the kind.

    >>> kind_name("lightning")
    'a Lightning Callback'
    """
    return _NAMES.get(kind, kind)
