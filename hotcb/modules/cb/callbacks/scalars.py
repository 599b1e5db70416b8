"""Send a callback's scalars to every logger the run has.

* ``env["log"]``: one line ``[<id>] step=N key=value ...`` (else the ``hotcb`` logger);
* a TensorBoard-style writer at ``env["tb_writer"]``, ``env["summary_writer"]`` or
  ``env["writer"]`` (anything with ``add_scalar(tag, value, step)``);
* Lightning-style loggers at ``env["loggers"]`` (anything with ``log_metrics(dict, step)``).

Example:
    >>> log_scalars({"log": print}, "grad_stats", {"global_norm": 1.25}, step=10)
    [grad_stats] step=10 global_norm=1.25
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hotcb.modules.cb.callbacks.emit import emit

__all__ = ["WRITER_KEYS", "log_scalars"]

WRITER_KEYS = ("tb_writer", "summary_writer", "writer")


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def log_scalars(env: dict[str, Any], prefix: str, scalars: Mapping[str, float], step: int) -> None:
    """Log ``scalars`` (tagged ``<prefix>/<key>``) to the line log and every writer/logger."""
    if not scalars:
        return
    emit(env, f"[{prefix}] step={step} " + " ".join(f"{k}={_fmt(v)}" for k, v in scalars.items()))
    for key in WRITER_KEYS:
        writer = env.get(key)
        add_scalar = getattr(writer, "add_scalar", None)
        if callable(add_scalar):
            for name, value in scalars.items():
                add_scalar(f"{prefix}/{name}", value, step)
    for logger in env.get("loggers") or ():
        log_metrics = getattr(logger, "log_metrics", None)
        if callable(log_metrics):
            log_metrics({f"{prefix}/{k}": v for k, v in scalars.items()}, step=step)
