"""What every trainer adapter shares: the initial set, one kernel, one env, stop requests.

An adapter maps its framework's hooks to hotcb events and its framework's objects to env
keys; :class:`AdapterSession` does the rest, the same way for Lightning and HF::

    >>> import tempfile
    >>> session = AdapterSession("Doc", callbacks={}, log=lambda m: None)
    >>> session.start(tempfile.mkdtemp(), rank=0)
    >>> session.apply("train_step_end", step=1, loss=0.5) is None   # no stop requested
    True
    >>> session.close()
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from hotcb.hydra.hydrate import callback_nodes
from hotcb.kernel import Kernel
from hotcb.launch import kernel_from_config
from hotcb.requests import clear_requests, stop_requested

__all__ = ["AdapterSession", "log_to_hotcb", "show_hotcb_log"]

_log = logging.getLogger("hotcb")


def show_hotcb_log() -> None:
    """Make the ``hotcb`` logger's INFO lines (callback output, "hotcb: set heartbeat
    applied") visible on stdout when nothing configured logging: a plain script, not a Hydra app
    (whose job log and console already take them). A configured logging is left alone.
    """
    if _log.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stdout)  # where the lines went before (print)
    handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)


def log_to_hotcb(message: str) -> None:
    """The adapters' ``env["log"]``: one INFO line on the ``hotcb`` logger.

    >>> log_to_hotcb("[heartbeat] train_step_end step=5")   # nothing configured: not shown
    """
    _log.info("%s", message)


#: Keys of the ``hotcb`` node that are not kernel settings.
_NOT_KERNEL = ("callbacks", "adopt")


class AdapterSession:
    """One kernel driven from a trainer's hooks.

    Args:
        owner: the adapter's name, used in error messages.
        run_dir: the hotcb run dir; ``None`` lets :meth:`start` use the adapter's default.
        callbacks: the initial set, as ``hotcb.callbacks`` nodes (id -> ``{_target_, ...}``).
        log: a ``print``-like sink for callback output (default: the ``hotcb`` logger at
            INFO, see :func:`log_to_hotcb`).
        settings: the rest of the ``hotcb`` node (``poll_interval``, ``run_dir``, ...).
        env: entries the env starts with (``loss_state``, ``resolve_optimizer``: what the
            opt and loss modules read).
        **kernel_kwargs: passed to :class:`~hotcb.kernel.HotKernel`.

    ``run_dir`` may be a kernel the app built (the reference project's
    ``HotCBLightning(kernel)``): it is driven as it is (no initial set, no kernel options)
    and closed with the session.
    """

    def __init__(
        self,
        owner: str,
        run_dir: str | os.PathLike[str] | Kernel | None = None,
        callbacks: Mapping[str, Any] | None = None,
        log: Callable[[str], Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, Any] | None = None,
        **kernel_kwargs: Any,
    ) -> None:
        self.given: Kernel | None = None
        if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
            if callbacks or kernel_kwargs:
                raise ValueError(
                    f"{owner}: given a kernel, it takes no callbacks or kernel options "
                    f"(got {sorted([*(callbacks or {}), *kernel_kwargs])}): load them into "
                    "the kernel, or pass run_dir= instead of the kernel"
                )
            self.given, run_dir = run_dir, None
        self.seed = {k: v for k, v in (env or {}).items() if v is not None}
        self.settings = {k: v for k, v in (settings or {}).items() if k not in _NOT_KERNEL}
        self.run_dir = run_dir or self.settings.pop("run_dir", None)
        self.callbacks = callback_nodes(callbacks, owner)
        self.kernel_kwargs = kernel_kwargs
        self.sink: Callable[[str], Any] = log or log_to_hotcb
        self.kernel: Kernel | None = None
        self.env: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        """Whether this process runs a kernel (it does on rank 0, after :meth:`start`)."""
        return self.kernel is not None

    def start(self, default_run_dir: str | os.PathLike[str], **env: Any) -> None:
        """Hydrate the kernel from the initial set (once); ``env`` seeds the env dict."""
        if self.kernel is not None:
            return
        show_hotcb_log()
        if self.given is not None:
            kernel = self.given
        else:
            cfg = {"hotcb": {**self.settings, "callbacks": self.callbacks}}
            run_dir = self.run_dir or default_run_dir
            kernel = kernel_from_config(cfg, run_dir=run_dir, **self.kernel_kwargs)
        self.kernel = kernel
        self.env = {"log": self.sink, "run_dir": str(kernel.run_dir.path), **self.seed, **env}

    def apply(self, event: str, **env: Any) -> str | None:
        """Update the env, dispatch ``event``; return a stop request's reason, if any."""
        if self.kernel is None:
            return None
        self.env.update(env)
        self.kernel.apply(self.env, [event])
        return self.take_stop_request()

    def take_stop_request(self) -> str | None:
        """A stop request's reason (said on the sink and forgotten), or None; for an adapter
        that updates :attr:`env` and calls the kernel itself on its hot path."""
        reason = stop_requested(self.env)
        if reason:
            self.sink(f"[hotcb] stop requested at step {self.env.get('step')}: {reason}")
            clear_requests(self.env)
        return reason

    def close(self) -> None:
        """Close the kernel (idempotent)."""
        if self.kernel is not None:
            self.kernel.close()
            self.kernel = None
