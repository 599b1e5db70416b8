"""A Hydra callback: warn once when ``hotcb.callbacks`` is composed but nothing consumes it.

Registered for every Hydra app by hotcb's search-path plugin (see
:mod:`hydra_plugins.hotcb_searchpath.hotcb_searchpath_plugin`). Hydra imports this module
at startup, so it imports nothing heavy (no hotcb kernel, no torch): it reads the composed
config and ``sys.modules``.

* At job start, in the lightning-hydra-template shape (a ``callbacks`` node of
  ``_target_`` nodes), it warns when no node there runs hotcb's controller, or the one
  that does was given its own ``callbacks`` and ignores ``hotcb.callbacks``.
* At job end, when it has not warned: if no hotcb kernel module was ever imported in the
  job, nothing can have loaded the callbacks.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["ADAPTERS", "UnconsumedCheck", "unconsumed_reason"]

log = logging.getLogger("hotcb")

#: The ``_target_`` names of hotcb's trainer adapters.
ADAPTERS = frozenset(
    f"hotcb.adapters.{name}"
    for name in (
        "lightning.HotCallbackController",
        "lightning.HotCBLightning",
        "hf.HotHFCallback",
        "hf.HotCBHFCallback",
    )
)
_FIX = (
    "add `- hotcb` to your callbacks defaults (or run with 'callbacks=[default,hotcb]'); "
    "see docs/adapters.md"
)


def _composed(config: Any) -> list[str]:
    node = OmegaConf.select(config, "hotcb.callbacks", default=None)
    if not isinstance(node, DictConfig):
        return []
    raw = OmegaConf.to_container(node, resolve=False)
    return [str(k) for k, v in raw.items() if v is not None] if isinstance(raw, dict) else []


def unconsumed_reason(config: Any) -> str | None:
    """At job start: why the composed ``hotcb.callbacks`` will not load, when the config
    alone says so (the template shape); else None."""
    names = _composed(config)
    group = OmegaConf.select(config, "callbacks", default=None)
    if not names or not isinstance(group, DictConfig):
        return None
    raw = OmegaConf.to_container(group, resolve=False)
    assert isinstance(raw, dict)
    adapters = {
        k: n for k, n in raw.items() if isinstance(n, dict) and n.get("_target_") in ADAPTERS
    }
    listed = ", ".join(names)
    if not adapters:
        return (
            f"hotcb.callbacks ({listed}) is composed but no node of `callbacks` runs hotcb's "
            f"controller, so none of them will load: {_FIX}"
        )
    if any(
        "config" in n or "hotcb.callbacks" in str(n.get("callbacks")) for n in adapters.values()
    ):
        return None
    first = next(iter(adapters))
    return (
        f"hotcb.callbacks ({listed}) is composed but callbacks.{first} was given its own "
        f"`callbacks` and ignores it: use hotcb's callbacks/hotcb.yaml instead ({_FIX})"
    )


class UnconsumedCheck(Callback):
    """See the module docstring."""

    def __init__(self) -> None:
        self.warned = False

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        reason = unconsumed_reason(config)
        if reason:
            self.warned = True
            log.warning("hotcb: %s", reason)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        names = _composed(config)
        if self.warned or not names or "hotcb.kernel" in sys.modules:
            return
        self.warned = True
        log.warning(
            "hotcb: hotcb.callbacks (%s) was composed but nothing in this job ran a hotcb "
            "kernel, so none of them loaded: call HotKernel.from_config(cfg) in the app "
            "(docs/hydra.md), or for Lightning %s",
            ", ".join(names),
            _FIX,
        )
