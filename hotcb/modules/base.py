"""What a kernel module is: the contract between :class:`~hotcb.kernel.HotKernel` and the
modules it routes ops to.

The kernel knows no module by name. A module declares its ``name`` (the ``module`` field
of its ops), the ops it owns (:class:`~hotcb.ops.OpSpec`, registered when a kernel is given
the module, so commands naming them parse at the edge), its section of
``hotcb.state.json`` (``state_key``), and how to apply, replay, dispatch, report and close.
The kernel reads and records; the module only ever sees valid ops.

A module with nothing to do at a step costs the hot path nothing: its ``dispatch`` is
None while it has no per-step work, and it calls its host's ``redispatch()`` when that
changes (an op gave it work, or its last piece of work ended), so the kernel rebuilds the
one callable it calls per ``apply`` from the modules that have work.

A module that supports the desired-state file (``config_path``) also has
``reconcile(document) -> list[Op]``: the ops that take it to what the parsed YAML document
asks for (raising :class:`~hotcb.ops.CommandError` for a bad section).

Example: a module is anything with these members (see ``tests/test_kernel_modules.py`` for a
complete one routed end to end):

    >>> result = OpResult("applied", details={"count": 3})
    >>> result.decision, dict(result.details)
    ('applied', {'count': 3})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotcb.ledger import LedgerEntry
from hotcb.ops import CommandError, Op, OpSpec, module_ops
from hotcb.rundir import RunDir

__all__ = ["Env", "KernelModule", "ModuleHost", "OpResult", "StepWork", "op_from_entry"]

#: The dict a training loop passes to ``apply`` (and every callback).
Env = dict[str, Any]


@dataclass(frozen=True)
class OpResult:
    """What applying one op did: ``applied``, ``failed`` (with ``error``) or ``ignored``."""

    decision: str
    error: str | None = None
    #: Extra facts for the ledger (e.g. the sha256 of a loaded file).
    details: Mapping[str, Any] = field(default_factory=dict)


class ModuleHost(Protocol):
    """What a module may use of the kernel it is attached to."""

    @property
    def run_dir(self) -> RunDir: ...

    @property
    def allowed_factories(self) -> frozenset[str]: ...

    def recorder(self, module: str) -> Callable[..., LedgerEntry]:
        """A ``record(op=, id=, source=, decision=, payload=, error=, env=)`` function
        for changes the module makes on its own."""
        ...

    def mark_changed(self) -> None: ...

    def redispatch(self) -> None:
        """The module's ``dispatch`` changed (it has per-step work now, or none any more):
        the kernel reads every module's ``dispatch`` again, used from the next ``apply``."""
        ...


class KernelModule(Protocol):
    """What a kernel module provides (``cb``, hot callbacks, is the one hotcb ships)."""

    #: the ``module`` field of its ops, and its key in ``kernel.modules``
    name: str
    #: its section of ``hotcb.state.json`` (``callbacks`` for ``cb``)
    state_key: str
    #: the ops it owns
    ops: Sequence[OpSpec]

    def attach(self, kernel: ModuleHost) -> None:
        """Called once by the kernel that runs this module."""
        ...

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None] | None:
        """The hot-path entry: ``dispatch(env, events)``; None while the module has nothing
        to do per step (call the host's ``redispatch()`` when that changes)."""
        ...

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        """Apply one valid op of this module; never raise for a bad op (return ``failed``).
        ``sha256``: the captured source a load must use (replay, other ranks); a module that
        loads no code ignores it."""
        ...

    def replay(self, entry: LedgerEntry) -> OpResult | None:
        """Re-apply what an ``applied`` ledger entry of this module did (resume); None
        for an entry that changed nothing to rebuild."""
        ...

    def poll(self, env: Env) -> bool:
        """Safe-point housekeeping; True if the state changed."""
        ...

    def status(self) -> dict[str, Any]:
        """This module's section of ``hotcb.state.json``."""
        ...

    def close(self) -> None: ...


class StepWork:
    """What a module whose ``dispatch`` is only its per-step work shares (``opt``'s
    clipping, ``loss``'s ramps): the kernel calls it at the first ``apply`` (where
    :meth:`_look` finds what the module drives in the env), then only while
    :meth:`_step_work` returns a callable; :meth:`_redispatch` tells the host when that
    changes.

    >>> class Idle(StepWork):
    ...     def _look(self, env): pass
    ...     def _step_work(self): return None
    >>> module = Idle()
    >>> module.dispatch is not None  # the first apply
    True
    >>> module.dispatch({}, ["train_step_end"]); module.dispatch is None
    True
    """

    def __init__(self) -> None:
        #: what the kernel calls per apply: the first apply, then the step work (None: nothing)
        self._dispatch: Callable[[Env, Sequence[str]], None] | None = self._first_dispatch
        self._started = False  # True once the first apply was dispatched
        self._host: ModuleHost | None = None

    def attach(self, kernel: ModuleHost) -> None:
        self._host = kernel

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None] | None:
        """At the first ``apply`` and while the module has per-step work, else None."""
        return self._dispatch

    def _look(self, env: Env) -> None:
        """Find what the module drives in ``env`` (the optimizer, the loss state)."""
        raise NotImplementedError

    def _step_work(self) -> Callable[[Env, Sequence[str]], None] | None:
        """The per-step work now, or None."""
        raise NotImplementedError

    def _first_dispatch(self, env: Env, events: Sequence[str]) -> None:
        """The first apply: note what the module drives as the run starts it, then do
        what this step needs and leave the dispatch if there is nothing."""
        self._look(env)
        self._started = True
        self._redispatch()
        if self._dispatch is not None:
            self._dispatch(env, events)

    def _redispatch(self) -> None:
        """Be in the kernel's dispatch exactly while there is per-step work."""
        if not self._started:
            return  # the first apply decides
        wanted = self._step_work()
        if wanted != self._dispatch:
            self._dispatch = wanted
            if self._host is not None:
                self._host.redispatch()


def op_from_entry(entry: LedgerEntry) -> Op | None:
    """The op a ledger entry recorded, rebuilt from its module's :class:`~hotcb.ops.OpSpec`
    (the fields the op takes are read back from the payload); None when the entry's op is
    not one its module registered (a kernel entry, an auto ``stuck``, ...).

    >>> from hotcb.ledger import LedgerEntry
    >>> entry = LedgerEntry(seq=1, wall_time=0.0, step=3, epoch=None, event=None, module="cb",
    ...     op="set", id="hb", source="external", decision="applied",
    ...     payload={"params": {"every": 5}, "commands_inode": 7})
    >>> op_from_entry(entry).to_dict()
    {'module': 'cb', 'op': 'set', 'id': 'hb', 'params': {'every': 5}}
    """
    table = module_ops(entry.module)
    spec = table.get(entry.op) if table is not None else None
    if spec is None or entry.id is None:
        return None
    data: dict[str, Any] = {"module": entry.module, "op": spec.name, "id": entry.id}
    for key in spec.takes:
        if entry.payload.get(key) is not None:
            data[key] = entry.payload[key]
    try:
        return Op.from_dict(data)
    except CommandError:
        return None
