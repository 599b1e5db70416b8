"""The kernel modules a composed config asks for beside hot callbacks.

``hotcb.opt`` and ``hotcb.loss`` nodes turn on the ``opt`` and ``loss`` modules (see
docs/opt-loss.md)::

    hotcb:
      opt:
        config_key: optimizer     # where the app's config keeps the optimizer's arguments
        clip_norm: null           # clip gradients from the start (optional)
      loss:
        config_key: loss          # the node env["loss_state"] is

Without either node the kernel runs the callback module only (nothing changes for a run
that does not use them).

Example:
    >>> modules = kernel_modules({"hotcb": {"opt": {"config_key": "optimizer"}}})
    >>> sorted(modules), modules["opt"].config_key
    (['cb', 'opt'], 'optimizer')
    >>> kernel_modules({"hotcb": {}}) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotcb.hydra.hydrate import HydrationError, _node
from hotcb.modules.base import KernelModule
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.loss import LossModule
from hotcb.modules.opt import OptModule
from hotcb.modules.opt.params import check_values

__all__ = ["MODULE_KEYS", "kernel_modules"]

#: The ``hotcb`` keys that turn on a module, and what each node may hold.
MODULE_KEYS: dict[str, tuple[str, ...]] = {
    "opt": ("config_key", "clip_norm"),
    "loss": ("config_key",),
}


def _section(node: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    section = node.get(name)
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise HydrationError(
            f"hotcb.{name} must be a mapping, got {section!r}", key=f"hotcb.{name}"
        )
    unknown = sorted(set(section) - set(MODULE_KEYS[name]))
    if unknown:
        raise HydrationError(
            f"unknown key(s) {', '.join(unknown)}; hotcb.{name} takes "
            f"{', '.join(MODULE_KEYS[name])}",
            key=f"hotcb.{name}",
        )
    key = section.get("config_key")
    if key is not None and (not isinstance(key, str) or not key):
        raise HydrationError(
            f"config_key must name a node of the app's config (e.g. optimizer), got {key!r}",
            key=f"hotcb.{name}.config_key",
        )
    return dict(section)


def kernel_modules(
    cfg: Any, *, auto_disable_on_error: bool = True
) -> dict[str, KernelModule] | None:
    """The modules for ``cfg`` (callbacks first), or None when it asks for no other."""
    node = _node(cfg)
    opt, loss = _section(node, "opt"), _section(node, "loss")
    if opt is None and loss is None:
        return None
    modules: dict[str, KernelModule] = {
        CallbackModule.name: CallbackModule(auto_disable_on_error=auto_disable_on_error)
    }
    if opt is not None:
        clip = opt.get("clip_norm")
        if clip is not None:
            try:
                check_values({"clip_norm": clip})
            except ValueError as exc:
                raise HydrationError(str(exc), key="hotcb.opt.clip_norm") from None
        modules[OptModule.name] = OptModule(opt.get("config_key"), clip_norm=clip)
    if loss is not None:
        modules[LossModule.name] = LossModule(loss.get("config_key"))
    return modules
