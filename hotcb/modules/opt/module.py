"""``OptModule``: the ``opt`` kernel module, live optimizer hyperparameters.

``hotcb opt set lr=1e-4`` becomes ``{"module": "opt", "op": "set", "id": "optimizer",
"params": {"lr": 0.0001}}``; the kernel routes it here at the next safe point, where the
optimizer is ``env["optimizer"]`` (or what ``env["resolve_optimizer"]()`` returns) and its
LR scheduler, if any, ``env["scheduler"]`` (or ``env["lr_scheduler"]``, as the HF adapter
names it). Every change is checked against the live param groups first and applied to all
of them or none: a bad value, a group that does not exist or a key the optimizer lacks is
``failed`` in the ledger and the optimizer is unchanged. Setting ``lr`` under a scheduler
rescales the schedule (:mod:`hotcb.modules.opt.schedule`).

``clip_norm`` is hotcb's: at every ``after_backward`` event (the loop emits it between
``backward()`` and ``optimizer.step()``) the gradients of each group with a ``clip_norm``
are clipped with ``torch.nn.utils.clip_grad_norm_``. An idle module costs ``apply``
nothing: it is in the kernel's dispatch only at the first ``apply`` (where it notes the
optimizer as the run starts it) and while a ``clip_norm`` is set; it finds a new optimizer
at the kernel's polls (or sync points) and when an op comes.

Its section of ``hotcb.state.json`` is ``optimizer``: the class, the scheduler, every
group's current values and the values it started with, and ``config_key`` (where the
app's Hydra config keeps the optimizer, for ``hotcb export-config``).

Example:
    >>> import torch, tempfile
    >>> from hotcb.kernel import HotKernel
    >>> from hotcb.ops import Op
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> kernel = HotKernel(tempfile.mkdtemp(), register=False, modules={"opt": OptModule()})
    >>> kernel.submit(Op("set", "optimizer", module="opt", params={"lr": 0.05}),
    ...               env={"step": 3, "optimizer": opt}).decision
    'applied'
    >>> opt.param_groups[0]["lr"]
    0.05
    >>> kernel.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hotcb.ledger import LedgerEntry
from hotcb.modules.base import Env, OpResult, StepWork
from hotcb.modules.opt.params import OPT_ID, check_values, group_view, plan
from hotcb.modules.opt.schedule import rescale, schedulers
from hotcb.ops import Op, OpSpec, register_ops

__all__ = ["OPT_OPS", "OptModule"]

#: The ops of the ``opt`` module.
OPT_OPS: tuple[OpSpec, ...] = (
    OpSpec(
        "set",
        takes=frozenset({"params"}),
        needs={"params": "at least one value, e.g. lr=1e-4"},
        aliases=("set_params",),
    ),
)
register_ops("opt", OPT_OPS)  # a process that reads opt ledger entries can rebuild their ops


def find_optimizer(env: Env) -> Any:
    """``env["optimizer"]``, else ``env["resolve_optimizer"]()``, else None."""
    optimizer = env.get(OPT_ID)
    if optimizer is None and callable(env.get("resolve_optimizer")):
        optimizer = env["resolve_optimizer"]()
    return optimizer


def find_scheduler(env: Env) -> Any:
    """``env["scheduler"]``, else ``env["lr_scheduler"]``, else None."""
    scheduler = env.get("scheduler")
    return scheduler if scheduler is not None else env.get("lr_scheduler")


class OptModule(StepWork):
    """Kernel module ``opt``.

    Args:
        config_key: where the app's Hydra config keeps the optimizer's arguments
            (``hotcb.opt.config_key``, e.g. ``optimizer``): export writes ``lr`` and the
            other values as overrides of that node. None: not exported.
        clip_norm: clip every group's gradients to this norm from the start
            (``hotcb.opt.clip_norm``).
    """

    name = "opt"
    state_key = "optimizer"
    ops: Sequence[OpSpec] = OPT_OPS

    def __init__(self, config_key: str | None = None, clip_norm: float | None = None) -> None:
        super().__init__()
        self.config_key = config_key
        self._default_clip = clip_norm
        self._optimizer: Any = None
        self._scheduler: Any = None
        #: per group: the norm its gradients are clipped to (None: not clipped)
        self._clip: list[float | None] = []
        self._initial: list[dict[str, Any]] = []

    def _clip_dispatch(self, env: Env, events: Sequence[str]) -> None:
        if "after_backward" in events:
            self._look(env)
            self._clip_gradients()

    def _step_work(self) -> Callable[[Env, Sequence[str]], None] | None:
        """Clipping, while gradients are to be clipped (a default ``clip_norm`` waits there
        for the optimizer)."""
        if self._optimizer is None:
            clipping = self._default_clip is not None
        else:
            clipping = any(c is not None for c in self._clip)
        return self._clip_dispatch if clipping else None

    def _look(self, env: Env) -> None:
        """Remember the optimizer and scheduler of the env (the first time, or a new one)."""
        optimizer = find_optimizer(env)
        if optimizer is None or optimizer is self._optimizer:
            return
        self._optimizer = optimizer
        self._scheduler = find_scheduler(env)
        groups = optimizer.param_groups
        self._clip = [self._default_clip] * len(groups)
        self._initial = [group_view(g, c) for g, c in zip(groups, self._clip, strict=True)]
        self._redispatch()
        if self._host is not None:
            self._host.mark_changed()

    def _clips(self, count: int) -> list[float | None]:
        """The clip norm of each of ``count`` groups (new groups get the default)."""
        return (self._clip + [self._default_clip] * count)[:count]

    def _clip_gradients(self) -> None:
        if self._optimizer is None:
            return
        from torch.nn.utils import clip_grad_norm_  # the loop has imported torch

        for group, norm in zip(self._optimizer.param_groups, self._clip, strict=False):
            if norm is not None:
                clip_grad_norm_(group["params"], norm)

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        if op.id != OPT_ID:
            return OpResult("failed", f"the opt module drives env[{OPT_ID!r}]; got id {op.id!r}")
        env = env or {}
        self._look(env)
        optimizer = self._optimizer
        if optimizer is None:
            return OpResult(
                "failed",
                "no optimizer in the env: the loop must pass env['optimizer'] (or a "
                "callable env['resolve_optimizer']) to kernel.apply",
            )
        groups = optimizer.param_groups
        self._clip = self._clips(len(groups))  # groups may have been added since
        try:
            group, values = check_values(op.params)
            new = plan(
                group,
                values,
                [{**g, "clip_norm": c} for g, c in zip(groups, self._clip, strict=True)],
            )
        except ValueError as exc:
            return OpResult("failed", str(exc))
        before = [group_view(g, c) for g, c in zip(groups, self._clip, strict=True)]
        saved, saved_clip = [dict(g) for g in groups], list(self._clip)
        scheduler = self._scheduler
        saved_scheduler = _scheduler_state(scheduler)
        try:
            lrs = {i: float(v["lr"]) for i, v in enumerate(new) if "lr" in v}
            if lrs:
                rescale(scheduler, groups, lrs)
            for i, values_i in enumerate(new):
                for key, value in values_i.items():
                    if key == "clip_norm":
                        self._clip[i] = value
                    elif key == "betas":
                        groups[i][key] = tuple(value)
                    elif key != "lr":
                        groups[i][key] = value
        except Exception as exc:  # leave the optimizer as it was
            for g, old in zip(groups, saved, strict=True):
                g.clear()
                g.update(old)
            self._clip = saved_clip
            _restore_scheduler(scheduler, saved_scheduler)
            return OpResult("failed", f"{type(exc).__name__}: {exc}; the optimizer is unchanged")
        self._redispatch()
        after = [group_view(g, c) for g, c in zip(groups, self._clip, strict=True)]
        return OpResult(
            "applied",
            details={
                "groups": [{k: after[i][k] for k in v} for i, v in enumerate(new)],
                "before": [{k: before[i][k] for k in v} for i, v in enumerate(new)],
                "scheduler": type(scheduler).__name__ if scheduler is not None else None,
            },
        )

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        """Nothing: a resumed run's optimizer and scheduler come from the app's checkpoint,
        which holds the values (re-applying an ``lr`` at step 0 would break its schedule)."""
        return None

    def poll(self, env: Env) -> bool:
        optimizer = find_optimizer(env)
        if optimizer is not None and optimizer is not self._optimizer:
            self._look(env)
            return True
        return False

    def status(self) -> dict[str, Any]:
        """``config_key``, ``optimizer`` (its class), ``scheduler``, ``groups`` (current
        values per group) and ``initial`` (what they were when the module first saw them)."""
        optimizer = self._optimizer
        groups = [] if optimizer is None else list(optimizer.param_groups)
        return {
            "config_key": self.config_key,
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "scheduler": type(self._scheduler).__name__ if self._scheduler is not None else None,
            "groups": [
                group_view(g, c) for g, c in zip(groups, self._clips(len(groups)), strict=True)
            ],
            "initial": list(self._initial),
        }

    def close(self) -> None:
        pass


def _scheduler_state(scheduler: Any) -> list[tuple[Any, dict[str, Any]]]:
    if scheduler is None:
        return []
    saved = []
    for sched in schedulers(scheduler):
        state = {}
        for attr in ("base_lrs", "max_lrs", "_last_lr", "eta_min"):
            value = getattr(sched, attr, None)
            if value is not None:
                state[attr] = list(value) if isinstance(value, list) else value
        saved.append((sched, state))
    return saved


def _restore_scheduler(scheduler: Any, saved: list[tuple[Any, dict[str, Any]]]) -> None:
    for sched, state in saved:
        for attr, value in state.items():
            setattr(sched, attr, value)
