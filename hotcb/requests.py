"""Requests a callback makes to the training loop, through the env.

A callback cannot stop training by raising (that only disables the callback). It asks:
``request_stop(env, reason)``; the loop checks ``stop_requested(env)`` after
``kernel.apply`` and stops at that safe point. The Lightning and HF adapters check it
for you (``trainer.should_stop`` / ``control.should_training_stop``).

Example:
    >>> env = {"step": 7}
    >>> stop_requested(env) is None
    True
    >>> request_stop(env, "non-finite loss at step 7", by="anomaly_guard")
    >>> stop_requested(env)
    'non-finite loss at step 7 (anomaly_guard)'
"""

from __future__ import annotations

from typing import Any

__all__ = ["REQUESTS_KEY", "clear_requests", "request_stop", "stop_requested"]

#: Where requests live in the env: ``env["hotcb.requests"] = {"stop": "<reason>"}``.
REQUESTS_KEY = "hotcb.requests"


def request_stop(env: dict[str, Any], reason: str, *, by: str | None = None) -> None:
    """Ask the loop to stop at its next safe point (the first reason is kept)."""
    requests = env.setdefault(REQUESTS_KEY, {})
    requests.setdefault("stop", f"{reason} ({by})" if by else reason)


def stop_requested(env: dict[str, Any]) -> str | None:
    """The reason a stop was requested, or None."""
    requests = env.get(REQUESTS_KEY)
    return requests.get("stop") if isinstance(requests, dict) else None


def clear_requests(env: dict[str, Any]) -> None:
    """Forget all requests (e.g. after the loop has acted on them)."""
    env.pop(REQUESTS_KEY, None)
