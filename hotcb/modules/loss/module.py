"""``LossModule``: the ``loss`` kernel module, live loss weights, term switches and ramps.

``hotcb loss set distill_w=0.2 terms.aux=false`` becomes ``{"module": "loss", "op": "set",
"id": "loss_state", "params": {"distill_w": 0.2, "terms": {"aux": false}}}``; at the next
safe point the module changes ``env["loss_state"]`` (or what
``env["resolve_loss_state"]()`` returns): a mapping the app's loss function reads, e.g.
its Hydra config node ``cfg.loss``. hotcb does not touch autograd: the loss function reads
the new values at its next call. What may be set is checked against the mapping first
(:mod:`hotcb.modules.loss.params`): all leaves change, or none.

Ramps (``ramps.depth={type: linear, warmup_frac: 0.2, end: 2.0}``) are evaluated at every
new step the loop applies (:mod:`hotcb.modules.loss.ramps`), before that step's events
are dispatched, and write ``weights.<name>``. An idle module costs ``apply`` nothing: it
is in the kernel's dispatch only at the first ``apply`` (where it notes the loss state as
the run starts it) and while a ramp runs; it finds a new loss state at the kernel's polls
(or sync points) and when an op comes.

Its section of ``hotcb.state.json`` is ``loss``: ``values`` (the mapping now),
``initial`` (as the module first saw it), ``ramps`` and ``config_key`` (the node of the
app's config, for ``hotcb export-config``).

Example:
    >>> import tempfile
    >>> from hotcb.kernel import HotKernel
    >>> from hotcb.ops import Op
    >>> weights = {"weights": {"distill": 0.5}}
    >>> kernel = HotKernel(tempfile.mkdtemp(), register=False, modules={"loss": LossModule()})
    >>> kernel.submit(Op("set", "loss_state", module="loss", params={"distill_w": 0.2}),
    ...               env={"step": 3, "loss_state": weights}).decision
    'applied'
    >>> weights
    {'weights': {'distill': 0.2}}
    >>> kernel.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

from hotcb.ledger import LedgerEntry
from hotcb.modules.base import Env, OpResult, StepWork
from hotcb.modules.loss.params import LOSS_ID, check_change, leaf, split_path
from hotcb.modules.loss.ramps import Ramp
from hotcb.ops import Op, OpSpec, register_ops

__all__ = ["LOSS_OPS", "LossModule", "plain"]

#: The ops of the ``loss`` module.
LOSS_OPS: tuple[OpSpec, ...] = (
    OpSpec(
        "set",
        takes=frozenset({"params"}),
        needs={"params": "at least one value, e.g. distill_w=0.2"},
        aliases=("set_params",),
    ),
)
register_ops("loss", LOSS_OPS)  # a process that reads loss ledger entries can rebuild their ops


def plain(value: Any) -> Any:
    """``value`` as plain dicts, lists and scalars (a DictConfig node becomes a dict).

    >>> plain({"w": {"a": 1}, "l": (1, 2)})
    {'w': {'a': 1}, 'l': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [plain(v) for v in value]
    return value


def find_loss_state(env: Env) -> MutableMapping[str, Any] | None:
    """``env["loss_state"]``, else ``env["resolve_loss_state"]()``, else None."""
    state = env.get(LOSS_ID)
    if state is None and callable(env.get("resolve_loss_state")):
        state = env["resolve_loss_state"]()
    return state if isinstance(state, MutableMapping) else None


class LossModule(StepWork):
    """Kernel module ``loss``.

    Args:
        config_key: the node of the app's Hydra config that ``env["loss_state"]`` is
            (``hotcb.loss.config_key``, e.g. ``loss``): export writes the changed leaves
            as overrides of it (``loss.weights.distill=0.2``). None: not exported.
    """

    name = "loss"
    state_key = "loss"
    ops: Sequence[OpSpec] = LOSS_OPS

    def __init__(self, config_key: str | None = None) -> None:
        super().__init__()
        self.config_key = config_key
        self._state: MutableMapping[str, Any] | None = None
        self._initial: dict[str, Any] | None = None
        self._ramps: dict[str, Ramp] = {}
        self._step: Any = None

    def _ramp_dispatch(self, env: Env, events: Sequence[str]) -> None:
        self._look(env)
        self._advance(env.get("step"))

    def _step_work(self) -> Callable[[Env, Sequence[str]], None] | None:
        """The ramps, while one runs."""
        return self._ramp_dispatch if self._ramps else None

    def _look(self, env: Env) -> None:
        state = find_loss_state(env)
        if state is None or state is self._state:
            return
        self._state = state
        self._initial = plain(state)
        if self._host is not None:
            self._host.mark_changed()

    def _advance(self, step: Any) -> None:
        """Write each ramp's weight for ``step`` (once per step)."""
        if step == self._step or not isinstance(step, int) or self._state is None:
            return
        self._step = step
        for name, ramp in list(self._ramps.items()):
            self._state["weights"][name] = ramp.value(step)
            if ramp.done(step):
                del self._ramps[name]
                if self._host is not None:
                    self._host.mark_changed()
        self._redispatch()

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        if op.id != LOSS_ID:
            return OpResult("failed", f"the loss module drives env[{LOSS_ID!r}]; got id {op.id!r}")
        env = env or {}
        self._look(env)
        state = self._state
        if state is None:
            return OpResult(
                "failed",
                "no loss state in the env: the loop must pass env['loss_state'] (a mapping "
                "its loss function reads) to kernel.apply",
            )
        try:
            sets, ramps = check_change(op.params, state)
            started = self._ramps_from(ramps, state, env)
        except ValueError as exc:
            return OpResult("failed", str(exc))
        before = {path: plain(leaf(state, path)) for path in sets}
        try:
            _assign(state, sets)
        except Exception as exc:  # e.g. a typed config node refusing the value
            _assign(state, before)
            return OpResult("failed", f"{type(exc).__name__}: {exc}; the loss state is unchanged")
        for path in sets:
            parents = split_path(path)[:-1]
            if parents == ["weights"]:
                self._ramps.pop(split_path(path)[-1], None)  # a weight set by hand ends its ramp
        for name in ramps:
            self._ramps.pop(name, None)
        self._ramps.update(started)
        self._step = None
        if started:
            self._advance(env.get("step"))
        self._redispatch()
        return OpResult(
            "applied",
            details={
                "set": plain(sets),
                "before": before,
                "ramps": {name: r.to_dict() for name, r in started.items()},
            },
        )

    def _ramps_from(
        self, specs: Mapping[str, dict[str, Any] | None], state: Mapping[str, Any], env: Env
    ) -> dict[str, Ramp]:
        started: dict[str, Ramp] = {}
        step = env.get("step")
        for name, spec in specs.items():
            if spec is None:
                continue
            if not isinstance(step, int):
                raise ValueError(f"ramps.{name}: the env has no integer 'step' to start it at")
            if "steps" in spec:
                length = spec["steps"]
            else:
                total = env.get("total_steps")
                if isinstance(total, bool) or not isinstance(total, int) or total < 1:
                    raise ValueError(
                        f"ramps.{name}: warmup_frac is a fraction of the run's total steps, and "
                        "the env has no 'total_steps' (an integer the loop passes): give "
                        "steps=N instead, or pass env['total_steps']"
                    )
                length = max(1, round(spec["warmup_frac"] * total))
            start = spec.get("start", float(state["weights"][name]))
            started[name] = Ramp(name, spec["type"], start, spec["end"], step, length)
        return started

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        """Nothing: a resumed run's loss state comes from the app (its config or
        checkpoint); the ledger keeps what was changed."""
        return None

    def poll(self, env: Env) -> bool:
        state = find_loss_state(env)
        if state is not None and state is not self._state:
            self._look(env)
            return True
        return False

    def status(self) -> dict[str, Any]:
        """``config_key``, ``values`` (the loss state now), ``initial`` and ``ramps``."""
        return {
            "config_key": self.config_key,
            "values": plain(self._state) if self._state is not None else None,
            "initial": self._initial,
            "ramps": {name: r.to_dict() for name, r in self._ramps.items()},
        }

    def close(self) -> None:
        pass


def _assign(state: MutableMapping[str, Any], values: Mapping[str, Any]) -> None:
    """Write each dotted path of ``values`` into ``state``."""
    for path, value in values.items():
        *parents, key = split_path(path)
        node: Any = state
        for part in parents:
            node = node[part]
        node[key] = value
