"""``grad_stats``: gradient norms of the model in ``env["model"]``.

Every ``every`` steps: the global L2 norm of all gradients (the same value as
``torch.nn.utils.get_total_norm``), the largest absolute gradient, and with
``per_layer`` the L2 norm of each parameter's gradient (the ``top_k`` largest are logged).

Gradients must still exist when it runs: emit ``after_backward`` between
``loss.backward()`` and ``optimizer.step()`` (best), or call it at ``train_step_end``
before the next ``zero_grad``. It computes once per step, on whichever comes first.

``norm_type`` (the reference project's parameter) picks the norm: 2 (L2, the default),
1, any p > 0, or ``inf`` (the largest absolute value); the global norm is then the p-norm
over all gradients, and the per-layer norms are p-norms too.

Hot parameters:
    every (int >= 1), per_layer (bool), top_k (int >= 1), norm_type (number > 0, or inf).

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> model(torch.ones(1, 2)).sum().backward()
    >>> cb = GradStatsCallback(every=1)
    >>> cb.handle("after_backward", {"step": 1, "model": model, "log": lambda m: None})
    >>> round(cb.last["global_norm"], 4)
    1.7321
"""

from __future__ import annotations

from typing import Any

from hotcb.hotparams import HotParam
from hotcb.modules.cb.callbacks.scalars import log_scalars
from hotcb.modules.cb.params import boolean, check_known, positive_int

__all__ = ["GradStatsCallback", "norm_order"]


def norm_order(value: Any) -> float:
    """A norm order: a number > 0, or ``inf``.

    >>> norm_order(1), norm_order(float("inf"))
    (1.0, inf)
    >>> norm_order(0)
    Traceback (most recent call last):
    ...
    ValueError: norm_type must be a number > 0 (2 for L2, inf for the largest value), got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f"norm_type must be a number > 0 (2 for L2, inf for the largest value), got {value!r}"
        )
    return float(value)


EVENTS = frozenset({"after_backward", "train_step_end"})


class GradStatsCallback:
    """Global and per-layer gradient norms, every N steps."""

    #: what `hotcb cb set` accepts (see hotcb.hotparams)
    hot_params = (
        HotParam("every", int, 50, "compute every N steps", ge=1),
        HotParam("per_layer", bool, False, "also the norm of each parameter's gradient"),
        HotParam("top_k", int, 5, "how many of the largest per-layer norms are logged", ge=1),
        HotParam("norm_type", "any", 2.0, "the norm's order: a number > 0, or inf"),
    )

    rank_zero_only = True
    events = EVENTS

    def __init__(
        self,
        id: str = "grad_stats",
        every: int = 50,
        per_layer: bool = False,
        top_k: int = 5,
        norm_type: float = 2.0,
    ) -> None:
        self.id = id
        self.every = positive_int("every", every)
        self.per_layer = boolean("per_layer", per_layer)
        self.top_k = positive_int("top_k", top_k)
        self.norm_type = norm_order(norm_type)
        self.last: dict[str, Any] = {}
        self._done_step: int | None = None

    def set_params(self, **kwargs: Any) -> None:
        check_known("grad_stats", kwargs, [p.name for p in self.hot_params])
        every = positive_int("every", kwargs.get("every", self.every))
        per_layer = boolean("per_layer", kwargs.get("per_layer", self.per_layer))
        top_k = positive_int("top_k", kwargs.get("top_k", self.top_k))
        norm_type = norm_order(kwargs.get("norm_type", self.norm_type))
        self.every, self.per_layer, self.top_k = every, per_layer, top_k
        self.norm_type = norm_type

    def handle(self, event: str, env: dict[str, Any]) -> None:
        if event not in EVENTS:
            return
        step = env.get("step", 0)
        if step % self.every or step == self._done_step:
            return
        model = env.get("model")
        if model is None:
            return
        import torch

        named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        if not named:
            return  # no gradients (yet): try again at the next event of this step
        self._done_step = step
        with torch.no_grad():
            p = self.norm_type
            norms = torch.stack([torch.linalg.vector_norm(g.detach(), p) for _, g in named])
            global_norm = float(torch.linalg.vector_norm(norms, p))
            max_abs = float(max(g.detach().abs().max() for _, g in named))
            result: dict[str, Any] = {"step": step, "global_norm": global_norm, "max_abs": max_abs}
            scalars = {"global_norm": global_norm, "max_abs": max_abs}
            if self.per_layer:
                per_layer = {n: float(v) for (n, _), v in zip(named, norms.tolist(), strict=True)}
                result["per_layer"] = per_layer
                top = sorted(per_layer.items(), key=lambda kv: kv[1], reverse=True)[: self.top_k]
                scalars.update({f"norm/{n}": v for n, v in top})
        self.last = result
        log_scalars(env, self.id, scalars, step)
