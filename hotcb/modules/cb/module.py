"""``CallbackModule``: the ``cb`` module of a :class:`~hotcb.kernel.HotKernel`.

The kernel reads and parses commands, then routes each ``cb`` op here; the module
applies it to its :class:`~hotcb.modules.cb.controller.HotController` and hands the
kernel the controller's dispatch loop for the hot path. The module never reads
command files itself. It is a :class:`~hotcb.modules.base.KernelModule` like any other:
its ops are :data:`hotcb.ops.CALLBACK_OPS`, its state is ``callbacks`` in
``hotcb.state.json``, and it reconciles the ``callbacks`` section of a desired-state file.

Example:
    >>> import tempfile
    >>> from hotcb.kernel import HotKernel
    >>> kernel = HotKernel(run_dir=tempfile.mkdtemp(), register=False)
    >>> isinstance(kernel.modules["cb"], CallbackModule)
    True
    >>> kernel.modules["cb"].controller is kernel.callbacks
    True
    >>> kernel.close()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from hotcb.desired import parse_desired, plan
from hotcb.ledger import LedgerEntry
from hotcb.modules.base import ModuleHost, OpResult, op_from_entry
from hotcb.modules.cb.controller import HotController
from hotcb.modules.cb.protocol import Env
from hotcb.ops import CALLBACK_OPS, DEFAULT_MODULE, Op, OpSpec

__all__ = ["CallbackModule"]


class CallbackModule:
    """Kernel module ``cb``: hot callbacks.

    Args:
        controller: an existing controller to drive (a new one by default).
        auto_disable_on_error: passed to a new controller.
        allowed_factories: unmarked factories that may be loaded (see
            :class:`~hotcb.modules.cb.controller.HotController`); the kernel's are added.
    """

    #: ``cb``: the module of a command that names none
    name = DEFAULT_MODULE
    state_key = "callbacks"
    ops: Sequence[OpSpec] = CALLBACK_OPS

    def __init__(
        self,
        controller: HotController | None = None,
        *,
        auto_disable_on_error: bool = True,
        allowed_factories: Collection[str] = (),
    ) -> None:
        self.controller = controller or HotController(auto_disable_on_error=auto_disable_on_error)
        self.controller.allowed_factories |= frozenset(allowed_factories)
        #: ids the desired-state file loaded (only those does it unload)
        self._desired_owned: set[str] = set()

    def attach(self, kernel: ModuleHost) -> None:
        """Called once by the kernel: captured sources go to its run dir, stuck calls are
        published there, the kernel's ``allowed_factories`` apply, and changes the
        controller makes on its own are recorded in its ledger."""
        self.controller.allowed_factories |= kernel.allowed_factories
        if self.controller.sources_dir is None:
            self.controller.sources_dir = kernel.run_dir.sources
        if self.controller.stuck_path is None:
            self.controller.stuck_path = kernel.run_dir.stuck
        self.controller.bind(kernel.recorder(self.name), kernel.mark_changed)

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None]:
        """The hot-path entry: ``dispatch(env, events)``."""
        return self.controller.dispatch

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        return self.controller.apply_op(op, env, sha256=sha256)

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        """Re-apply an applied entry (resume): a ``load`` from the source captured under
        its sha256, a ``reload`` as a load of the new bytes that keeps whether the callback
        was enabled, the other ops as recorded. None for entries that are not ops."""
        reload = entry.op == "reload"
        op = op_from_entry(dataclasses.replace(entry, op="load") if reload else entry)
        if op is None:
            return None
        if reload:
            spec = self.controller.spec(op.id)
            if spec is not None:  # keep whether it was enabled
                op = dataclasses.replace(op, enabled=spec["enabled"])
        sha = entry.payload.get("sha256") if op.op == "load" else None
        return self.controller.apply_op(op, {"step": entry.step}, sha256=sha)

    def reconcile(self, document: Mapping[str, Any]) -> list[Op]:
        """The ops that take the live set to the ``callbacks`` section of a desired-state
        document (see :mod:`hotcb.desired`). Raises
        :class:`~hotcb.ops.CommandError` for an invalid section."""
        desired = parse_desired(document, section=self.name)
        ops = plan(desired, self.controller.spec, owned=self._desired_owned)
        self._desired_owned = set(desired)
        return ops

    def poll(self, env: Env) -> bool:
        """Safe-point housekeeping: reload python_file callbacks edited on disk, and time
        the calls of the dispatch that follows (the sampled cost ``hotcb status`` shows)."""
        self.controller.sample_costs()
        return self.controller.reload_changed_sources(env)

    def spec(self, cb_id: str) -> dict[str, Any] | None:
        return self.controller.spec(cb_id)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per id: ``enabled``, ``loaded``, ``target``, ``params``, ``error``."""
        return self.controller.status()

    def costs(self) -> dict[str, dict[str, Any] | None]:
        """Per id, the sampled cost of its ``handle`` calls (see ``HotController.costs``)."""
        return self.controller.costs()

    def close(self) -> None:
        self.controller.close()
