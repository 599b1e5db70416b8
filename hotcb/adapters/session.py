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

import os
from collections.abc import Callable, Mapping
from typing import Any

from hotcb.hydra.hydrate import callback_nodes
from hotcb.kernel import Kernel
from hotcb.launch import kernel_from_config
from hotcb.requests import clear_requests, stop_requested

__all__ = ["AdapterSession"]


class AdapterSession:
    """One kernel driven from a trainer's hooks.

    Args:
        owner: the adapter's name, used in error messages.
        run_dir: the hotcb run dir; ``None`` lets :meth:`start` use the adapter's default.
        callbacks: the initial set, as ``hotcb.callbacks`` nodes (id -> ``{_target_, ...}``).
        log: a ``print``-like sink for callback output (default: ``print`` with flush).
        **kernel_kwargs: passed to :class:`~hotcb.kernel.HotKernel`.
    """

    def __init__(
        self,
        owner: str,
        run_dir: str | os.PathLike[str] | None = None,
        callbacks: Mapping[str, Any] | None = None,
        log: Callable[[str], Any] | None = None,
        **kernel_kwargs: Any,
    ) -> None:
        self.run_dir = run_dir
        self.callbacks = callback_nodes(callbacks, owner)
        self.kernel_kwargs = kernel_kwargs
        self.sink: Callable[[str], Any] = log or (lambda message: print(message, flush=True))
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
        cfg = {"hotcb": {"callbacks": self.callbacks}}
        run_dir = self.run_dir or default_run_dir
        kernel = kernel_from_config(cfg, run_dir=run_dir, **self.kernel_kwargs)
        self.kernel = kernel
        self.env = {"log": self.sink, "run_dir": str(kernel.run_dir.path), **env}

    def apply(self, event: str, **env: Any) -> str | None:
        """Update the env, dispatch ``event``; return a stop request's reason, if any."""
        if self.kernel is None:
            return None
        self.env.update(env)
        self.kernel.apply(self.env, [event])
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
