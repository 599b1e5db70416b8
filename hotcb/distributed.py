"""``DistributedHotKernel``: live ops that every rank applies at the same step.

Under ``torchrun`` (DDP, FSDP) each rank runs the training loop. If each rank read the
command file on its own, ranks would apply a command at different steps, or (on nodes
without a shared file system) not at all. Instead:

* **rank 0 reads** the command stream, parses and validates each line, and reads the
  bytes of every ``python_file`` it loads (or reloads after an edit);
* at a **sync point** — the first ``apply`` of every step that is a multiple of
  ``sync_every``, which every rank reaches deterministically — the new ops travel to all
  ranks with collectives on the existing process group: an ``all_reduce`` of a counter,
  started in the background at one sync point and read at the next (so an idle sync
  point waits for nothing), then ``all_gather_object`` only when something happened;
* **every rank applies them** at that next sync point, in the same order, before
  dispatching that step's events; python_file callbacks load from the very bytes rank 0
  read. A command is applied within ``2 * sync_every`` steps of being written;
* **only rank 0 writes** the ledger and ``hotcb.state.json`` (which records the
  ``world_size``); a failure on another rank (an op that failed there, a callback that
  raised there and was auto-disabled) reaches rank 0 at the next sync point and is
  recorded with its ``rank``. An auto-disable on any rank disables that callback on every
  rank at that sync point, so the set stays identical.

A stop request (:func:`hotcb.requests.request_stop`) made on any rank reaches every rank
at the next sync point, so all ranks leave the loop at the same step.

Callbacks marked rank-zero-only (``rank_zero_only = True`` on the class, as the built-in
loggers are, or ``_rank_zero_only_: true`` in config) are loaded everywhere, so state
stays identical, but dispatched to on rank 0 only.

Construct it on every rank, after ``init_process_group`` and with the same arguments;
call ``apply`` with the same steps on every rank (the loop's global step). Without an
initialized process group (or with one process) it behaves as a plain
:class:`~hotcb.kernel.HotKernel`; :func:`hotcb.launch.kernel_from_config` picks it
automatically under an initialized group. Rank 0 runs a ``HotKernel`` and uses only its
public pieces: :meth:`~hotcb.kernel.HotKernel.read_commands` (the
:class:`~hotcb.intake.CommandIntake`), :meth:`~hotcb.kernel.HotKernel.submit` and its
:class:`~hotcb.recorder.EntryRecorder` (``kernel.entries``).

Example (one process, the gloo backend):
    >>> import tempfile, torch.distributed as dist
    >>> store = "file://" + tempfile.mktemp()
    >>> dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    >>> kernel = DistributedHotKernel(run_dir=tempfile.mkdtemp(), sync_every=5, register=False)
    >>> kernel.rank, kernel.world_size
    (0, 1)
    >>> kernel.apply({"step": 5, "log": print}, ["train_step_end"])
    >>> kernel.close(); dist.destroy_process_group()
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.kernel import HotKernel, _dispatch_of
from hotcb.ledger import LedgerEntry
from hotcb.modules.base import Env, KernelModule, OpResult
from hotcb.modules.cb.callbacks.emit import emit
from hotcb.modules.cb.controller import HotController
from hotcb.modules.cb.loader import LoadError, capture_source, read_source
from hotcb.modules.cb.module import CallbackModule
from hotcb.ops import Op, register_ops
from hotcb.recorder import op_payload
from hotcb.replay import ScheduleRunner
from hotcb.requests import REQUESTS_KEY, request_stop, stop_requested
from hotcb.rundir import RunDir
from hotcb.schedule import Schedule
from hotcb.stream import CommandLine

__all__ = ["DistributedHotKernel", "distributed_world"]

log = logging.getLogger("hotcb")


def _other_modules(modules: Mapping[str, KernelModule] | None) -> dict[str, KernelModule]:
    """A follower rank's modules besides callbacks (``opt``, ``loss``, ...), their ops
    registered so the ops rank 0 sends parse here. They apply what rank 0 sends and
    record nothing: a failure reaches rank 0 as a report."""
    out = {n: m for n, m in (modules or {}).items() if not isinstance(m, CallbackModule)}
    for name, module in out.items():
        register_ops(name, module.ops)
    return out


def distributed_world(group: Any = None) -> tuple[int, int] | None:
    """``(rank, world_size)`` if a ``torch.distributed`` group is initialized, else None.

    Never imports torch: a process that has not imported ``torch.distributed`` has no
    process group.

    >>> distributed_world() is None or isinstance(distributed_world(), tuple)
    True
    """
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return dist.get_rank(group), dist.get_world_size(group)


class _Leader(HotKernel):
    """Rank 0's kernel: a HotKernel whose state also records the world, and whose modules'
    ``redispatch()`` also rebuilds the distributed kernel's dispatch (``on_redispatch``)."""

    world: dict[str, Any] = {}
    on_redispatch: Callable[[], None] | None = None

    def status(self) -> dict[str, Any]:
        return {**super().status(), **self.world}

    def ended_at(self, env: Env) -> None:
        """The env of the loop's last ``apply`` (this kernel sees envs at sync points only):
        where :meth:`close` says the run ended."""
        self._env = env

    def redispatch(self) -> None:
        super().redispatch()
        if self.on_redispatch is not None:
            self.on_redispatch()


class _FollowerHost:
    """What a follower rank's modules (``opt``, ``loss``, ...) are attached to: their
    ``redispatch()`` rebuilds this rank's dispatch; what they record goes to rank 0 as a
    report (``record``); the run dir is this rank's private temporary directory."""

    def __init__(
        self,
        run_dir: RunDir,
        allowed_factories: frozenset[str],
        record: Callable[..., Any],
        redispatch: Callable[[], None],
    ) -> None:
        self._run_dir = run_dir
        self._allowed = allowed_factories
        self._record = record
        self.redispatch = redispatch

    @property
    def run_dir(self) -> RunDir:
        return self._run_dir

    @property
    def allowed_factories(self) -> frozenset[str]:
        return self._allowed

    def recorder(self, module: str) -> Callable[..., LedgerEntry]:
        def record(**fields: Any) -> LedgerEntry:
            self._record(module=module, **fields)
            return LedgerEntry(
                seq=0,
                wall_time=time.time(),
                step=None,
                epoch=None,
                event=None,
                module=module,
                op=str(fields.get("op")),
                id=fields.get("id"),
                source=str(fields.get("source", "auto")),
                decision=str(fields.get("decision", "applied")),
                payload=dict(fields.get("payload") or {}),
                error=fields.get("error"),
            )

        return record

    def mark_changed(self) -> None:
        """Nothing: only rank 0 writes the state."""


class DistributedHotKernel:
    """A hot kernel for every rank of a ``torch.distributed`` job.

    Args:
        run_dir: the run directory (rank 0 reads and writes it; other ranks never touch it).
        sync_every: steps between sync points (1 = every step). A command rank 0 reads at
            one sync point is applied at the next, so it lands within ``2 * sync_every``
            steps; an idle sync point costs one small background all_reduce.
        group: the process group (default: the world).
        **kernel_kwargs: for rank 0's :class:`~hotcb.kernel.HotKernel` (``fsync``,
            ``register``, ``resume``, ``auto_disable_on_error``, ...). ``poll_interval``
            does not apply: rank 0 reads at sync points.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        sync_every: int = 10,
        group: Any = None,
        **kernel_kwargs: Any,
    ) -> None:
        if int(sync_every) < 1:
            raise ValueError(f"sync_every must be a positive number of steps, got {sync_every}")
        if kernel_kwargs.get("config_path") is not None:
            raise ValueError(
                "DistributedHotKernel reads commands only; a desired-state YAML (config_path) "
                "is not supported under torch.distributed"
            )
        kernel_kwargs.pop("poll_interval", None)
        self.sync_every = int(sync_every)
        self._group = group
        world = distributed_world(group)
        self.rank, self.world_size = world or (0, 1)
        self.run_dir = RunDir(run_dir)
        self._synced: Any = None
        self._reports: list[dict[str, Any]] = []
        self._agreed_stop: str | None = None
        self._stop_sent = False
        self._pending: _Round | None = None
        self._tmp: Path | None = None
        self._closed = False
        self._last_env: Env | None = None
        auto_disable = bool(kernel_kwargs.get("auto_disable_on_error", True))
        if self.rank == 0:
            self._leader: _Leader | None = _Leader(run_dir, poll_interval=0, **kernel_kwargs)
            self._leader.world = {
                "world_size": self.world_size,
                "sync_every": self.sync_every,
            }
            self.run_dir = self._leader.run_dir
            self.modules: Mapping[str, KernelModule] = self._leader.modules
            self.controller: HotController = self._leader.callbacks
            self.controller.bind(self._leader_record, self._leader.mark_changed)
            self._leader.on_redispatch = self.redispatch
            self._leader.write_state()
        else:
            self._leader = None
            self._tmp = Path(tempfile.mkdtemp(prefix=f"hotcb-rank{self.rank}-"))
            self.controller = HotController(
                auto_disable_on_error=auto_disable,
                sources_dir=self._tmp,
                rank=self.rank,
                allowed_factories=kernel_kwargs.get("allowed_factories", ()),
            )
            self.controller.bind(self._follower_record, None)
            module = CallbackModule(self.controller)
            others = _other_modules(kernel_kwargs.get("modules"))
            self.modules = {module.name: module, **others}
            host = _FollowerHost(
                RunDir(self._tmp),
                frozenset(kernel_kwargs.get("allowed_factories", ())),
                self._follower_record,
                self.redispatch,
            )
            for other in others.values():
                other.attach(host)
        # every module's dispatch with per-step work (opt's clipping, loss's ramps), as rank
        # 0's kernel has it; rebuilt when a module's work changes (redispatch)
        self.redispatch()
        #: the ops due at later steps: every rank holds the same and applies them itself
        #: at their step, no communication needed (rank 0's kernel records them)
        self.schedule = ScheduleRunner()
        if self._leader is not None:
            self._leader.schedule = self.schedule
        #: True if rank 0 rebuilt the state from an existing ledger (every rank agrees).
        self.resumed = False
        if self.world_size > 1:
            self._share_initial_state()
        elif self._leader is not None:
            self.resumed = self._leader.resumed

    def redispatch(self) -> None:
        """Rebuild this rank's dispatch from every module's ``dispatch`` now (see
        :meth:`HotKernel.redispatch <hotcb.kernel.HotKernel.redispatch>`)."""
        self._dispatch = _dispatch_of(self.modules.values())

    # -- the hot path ---------------------------------------------------------------

    def apply(self, env: Env, events: Sequence[str]) -> None:
        """At a sync point, exchange and apply new ops on every rank; then dispatch
        ``events``. Never raises because of a command or a callback."""
        self._last_env = env  # the last step seen, however the loop builds its dicts
        step = env.get("step")
        if step is not None and step >= self.schedule.next_due:
            self._run_schedule(env, events)
        if step != self._synced and isinstance(step, int) and step % self.sync_every == 0:
            self._synced = step
            self._sync(env, events[0] if events else None)
        self._dispatch(env, events)
        if self.world_size > 1 and REQUESTS_KEY in env:
            self._hold_stop(env)

    def _hold_stop(self, env: Env) -> None:
        """A stop asked on one rank waits for the next sync point, where every rank gets
        it: a rank that left the loop alone would leave the others hanging in DDP."""
        reason = stop_requested(env)
        if reason is None or reason == self._agreed_stop:
            return
        env[REQUESTS_KEY].pop("stop", None)
        if not self._stop_sent:
            self._stop_sent = True
            self._reports.append({"op": "stop", "reason": reason, "propagate_only": True})

    @property
    def callbacks(self) -> HotController:
        """This rank's hot-callback controller (as :attr:`HotKernel.callbacks
        <hotcb.kernel.HotKernel.callbacks>`)."""
        return self.controller

    def load_schedule(self, schedule: Schedule) -> list[str]:
        """Apply ``schedule``'s entries at their steps on this rank (call it on every rank
        with the same schedule, e.g. from the config every rank composes); rank 0 records
        them. The problems of entries that cannot apply (see
        :meth:`HotKernel.load_schedule <hotcb.kernel.HotKernel.load_schedule>`)."""
        if self._leader is not None:
            return self._leader.load_schedule(schedule)
        return self.schedule.load(schedule)

    def _run_schedule(self, env: Env, events: Sequence[str]) -> None:
        """The ops due now, applied on this rank (every rank reaches the same step)."""
        if self._leader is not None:
            self._leader.run_schedule(env, events)
            return
        now, _missed = self.schedule.take(env.get("step"), events[0] if events else None)
        for due in now:
            self.submit(due.op, source=due.source, env=env)

    def submit(
        self,
        op: Op,
        *,
        source: str = "config",
        env: Env | None = None,
        event: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Apply ``op`` on this rank now (call it on every rank with the same op, e.g. the
        initial set from config) and return its ledger entry. Rank 0 records it; on another
        rank the entry is what rank 0 would record, not written anywhere (``seq`` 0), and a
        failure is reported with its rank at the next sync point."""
        env = env if env is not None else {"step": 0}
        extra = {**(extra or {}), "world_size": self.world_size}
        if self._leader is not None:
            return self._leader.submit(op, source=source, env=env, event=event, extra=extra)
        result = self._apply_here(op, env)
        if result.decision == "failed":
            self._report_failure(op, result.error, env, source)
        return LedgerEntry(
            seq=0,
            wall_time=time.time(),
            step=env.get("step"),
            epoch=env.get("epoch"),
            event=None,
            module=op.module,
            op=op.op,
            id=op.id,
            source=source,
            decision=result.decision,
            payload=op_payload(op, result, extra),
            error=result.error,
        )

    def _apply_here(self, op: Op, env: Env, sha256: str | None = None) -> OpResult:
        """Apply ``op`` to this rank's module for it (a follower rank: nothing recorded)."""
        module = self.modules.get(op.module)
        if module is None:
            return OpResult("failed", f"rank {self.rank} has no module {op.module!r}")
        return module.apply_op(op, env, sha256=sha256)

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (a broadcast; call it on every rank)."""
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=self._global_rank0(), group=self._group)
        return box[0]

    # -- sync points ----------------------------------------------------------------

    def _sync(self, env: Env, event: str | None) -> None:
        ops: list[dict[str, Any]] = []
        lines: list[CommandLine | None] = []
        if self._leader is not None:
            ops, lines = self._read_ops(env, event)
        payload = {"ops": ops, "reports": self._reports}
        self._reports = []
        if self.world_size == 1:
            self._deliver([payload], lines, env, event)
        else:
            # pipelined: finish the round started at the previous sync point (its small
            # all_reduce has long completed in the background), then start the next one
            previous, self._pending = self._pending, None
            if previous is not None:
                gathered = previous.finish(self._group, self.world_size)
                if gathered is not None:
                    self._deliver(gathered, previous.lines, env, event)
            self._pending = _Round.start(payload, lines, self._group)
        self._poll_modules(env)
        if self._leader is not None:
            self._leader.refresh_state()
        self.controller.sample_costs()  # time the calls of the dispatch that follows

    def _poll_modules(self, env: Env) -> None:
        """Every module's safe-point ``poll`` but the callback module's (the sync point
        does its part: rank 0 reads edited sources, costs are sampled): e.g. ``opt``
        notices a new optimizer here, off the hot path."""
        for module in self.modules.values():
            if isinstance(module, CallbackModule):
                continue
            try:
                changed = module.poll(env)
            except Exception:
                log.exception("hotcb: module %r failed during poll", module.name)
                continue
            if changed and self._leader is not None:
                self._leader.mark_changed()

    def _deliver(
        self,
        gathered: list[dict[str, Any]],
        lines: list[CommandLine | None],
        env: Env,
        event: str | None,
    ) -> None:
        """Apply one round on this rank: every rank's reports, then rank 0's ops."""
        for rank, payload in enumerate(gathered):
            for report in payload["reports"]:
                self._on_report(rank, report, env, event)
        for index, message in enumerate(gathered[0]["ops"]):
            line = lines[index] if index < len(lines) else None
            self._apply_message(line, message, env, event)

    def _read_ops(
        self, env: Env, event: str | None
    ) -> tuple[list[dict[str, Any]], list[CommandLine | None]]:
        """Rank 0: the new commands (bad lines recorded here) and edited sources, with the
        command line each came from (None for a reload)."""
        leader = self._leader
        assert leader is not None
        messages: list[dict[str, Any]] = []
        lines: list[CommandLine | None] = []
        for command in leader.read_commands(env, event):
            message = self._message(command.op, "external", env, event, command.line)
            if message is not None:
                messages.append(message)
                lines.append(command.line)
        for cb_id in self.controller.changed_sources():
            op = self.controller.load_op(cb_id)
            if op is None:
                continue
            message = self._message(op, "auto", env, event, None, reload=True)
            if message is not None:
                messages.append(message)
                lines.append(None)
        return messages, lines

    def _message(
        self,
        op: Op,
        source: str,
        env: Env,
        event: str | None,
        line: CommandLine | None,
        *,
        reload: bool = False,
    ) -> dict[str, Any] | None:
        """An op as it travels to the ranks; python_file loads carry their bytes."""
        message: dict[str, Any] = {"op": op.to_dict(), "source": source, "reload": reload}
        if op.op == "load" and op.target is not None and op.target.kind == "python_file":
            assert self._leader is not None
            try:
                src = read_source(op.target.path)
                capture_source(self._leader.run_dir.sources, src.data, src.sha256)
            except (LoadError, OSError) as exc:
                self._leader.entries.record(
                    module=op.module,
                    op="reload" if reload else op.op,
                    id=op.id,
                    source=source,
                    decision="failed",
                    error=str(exc),
                    payload={"target": op.target.to_dict(), "world_size": self.world_size},
                    env=env,
                    event=event,
                    line=line,
                )
                log.error("hotcb: %s %s failed: %s", op.op, op.id, exc)
                return None
            if reload and src.sha256 == (self.controller.status()[op.id].get("sha256")):
                return None  # touched, not changed
            message["sha256"] = src.sha256
            message["code"] = src.data
        return message

    def _apply_message(
        self, line: CommandLine | None, message: Mapping[str, Any], env: Env, event: str | None
    ) -> None:
        op = Op.from_dict(message["op"])
        sha = message.get("sha256")
        if self._tmp is not None and sha is not None:
            capture_source(self._tmp, message["code"], sha)
        if op.at_step is not None and not self._at_step(op, line, env, event):
            return  # scheduled on every rank (or refused: its step passed)
        if self._leader is not None:
            decision, error = self._leader_apply(line, op, message, sha, env, event)
        else:
            result = self._apply_here(op, env, sha)
            decision, error = result.decision, result.error
            if decision == "failed":
                self._report_failure(
                    op, error, env, message["source"], "reload" if message["reload"] else None
                )
        if self.world_size > 1:
            what = "reload" if message["reload"] else op.op
            emit(
                env,
                f"[hotcb] rank {self.rank}/{self.world_size} step {env.get('step')}: "
                f"{what} {op.id} {decision}" + (f" ({error})" if error else ""),
            )

    def _at_step(self, op: Op, line: CommandLine | None, env: Env, event: str | None) -> bool:
        """An ``--at-step`` op reached every rank at this sync point: True to apply it now,
        else each rank schedules it (rank 0 records that, or the refusal)."""
        if self._leader is not None:
            return self._leader._at_step(op, env, event, line)
        step = env.get("step")
        if isinstance(step, int) and op.at_step == step:
            return True
        if isinstance(step, int) and op.at_step is not None and op.at_step > step:
            self.schedule.add(op, op.at_step)
        return False

    def _leader_apply(
        self,
        line: CommandLine | None,
        op: Op,
        message: Mapping[str, Any],
        sha: str | None,
        env: Env,
        event: str | None,
    ) -> tuple[str, str | None]:
        leader = self._leader
        assert leader is not None
        extra = {"world_size": self.world_size}
        if not message["reload"]:
            entry = leader.submit(
                op,
                source=message["source"],
                env=env,
                event=event,
                line=line,
                sha256=sha,
                extra=extra,
            )
            return entry.decision, entry.error
        previous = self.controller.status().get(op.id, {}).get("sha256")
        result = self.controller.apply_op(op, env, sha256=sha)
        payload = {
            "target": op.target.to_dict() if op.target else None,
            "sha256": sha,
            "previous_sha256": previous,
            "init": dict(op.init),
            "params": dict(op.params),
            **extra,
        }
        leader.entries.record(
            module=op.module,
            op="reload",
            id=op.id,
            decision=result.decision,
            error=result.error,
            payload=payload,
            env=env,
            event=event,
        )
        leader.mark_changed()
        return result.decision, result.error

    # -- failures on any rank ------------------------------------------------------------

    def _leader_record(self, *, env: Env | None = None, **fields: Any) -> LedgerEntry:
        """Rank 0's own auto-disable / reload records: in the ledger, with the rank, and
        shared so every rank disables the same callback."""
        assert self._leader is not None
        fields["payload"] = {**(fields.get("payload") or {}), "rank": 0}
        fields["payload"]["world_size"] = self.world_size
        self._queue_propagation(fields)
        return self._leader.recorder(CallbackModule.name)(env=env, **fields)

    def _follower_record(self, *, env: Env | None = None, **fields: Any) -> None:
        """A change or failure on this rank, kept for rank 0's ledger (next sync point)."""
        env = env or {}
        self._reports.append(
            {
                "module": fields.get("module", CallbackModule.name),
                "op": fields.get("op"),
                "id": fields.get("id"),
                "source": fields.get("source", "auto"),
                "decision": fields.get("decision"),
                "error": fields.get("error"),
                "payload": dict(fields.get("payload") or {}),
                "step": env.get("step"),
                "epoch": env.get("epoch"),
            }
        )

    def _queue_propagation(self, fields: Mapping[str, Any]) -> None:
        if fields.get("op") == "disable" and fields.get("source") == "auto":
            self._reports.append({"op": "disable", "id": fields.get("id"), "propagate_only": True})

    def _report_failure(
        self,
        op: Op,
        error: str | None,
        env: Env,
        source: str,
        as_op: str | None = None,
    ) -> None:
        log.error("hotcb: rank %d: %s %s failed: %s", self.rank, op.op, op.id, error)
        self._follower_record(
            env=env,
            module=op.module,
            op=as_op or op.op,
            id=op.id,
            source=source,
            decision="failed",
            error=error,
        )

    def _on_report(self, rank: int, report: Mapping[str, Any], env: Env, event: str | None) -> None:
        if report.get("op") == "stop":
            if self._agreed_stop is None:
                request_stop(env, f"rank {rank}: {report.get('reason')}")
                self._agreed_stop = stop_requested(env)
            return
        cb_id = report.get("id")
        auto_disable = report.get("op") == "disable" and (
            report.get("propagate_only") or report.get("source") == "auto"
        )
        if auto_disable and isinstance(cb_id, str):
            spec = self.controller.spec(cb_id)
            if spec is not None and spec["enabled"]:
                self.controller.apply_op(Op(op="disable", id=cb_id), env)
                if report.get("error"):
                    self.controller.note_error(cb_id, f"rank {rank}: {report['error']}")
        if self._leader is None or report.get("propagate_only"):
            return
        error = report.get("error")
        self._leader.entries.record(
            module=str(report.get("module") or CallbackModule.name),
            op=str(report.get("op")),
            id=cb_id,
            source=str(report.get("source") or "auto"),
            decision=str(report.get("decision") or "failed"),
            error=f"rank {rank}: {error}" if error else None,
            payload={**report.get("payload", {}), "rank": rank, "world_size": self.world_size},
            env={"step": report.get("step"), "epoch": report.get("epoch")},
            event=event,
        )
        self._leader.mark_changed()

    # -- start and end -------------------------------------------------------------------

    def _share_initial_state(self) -> None:
        """Rank 0's state (rebuilt from a ledger on resume) becomes every rank's."""
        snapshot: dict[str, Any] | None = None
        if self._leader is not None:
            ops: list[dict[str, Any]] = []
            snapshot = {"resumed": self._leader.resumed, "ops": ops}
            for cb_id in self.controller.ids:
                op = self.controller.load_op(cb_id)
                assert op is not None
                message: dict[str, Any] = {"op": op.to_dict()}
                sha = self.controller.status()[cb_id].get("sha256")
                if sha:
                    message["sha256"] = sha
                    message["code"] = self._leader.run_dir.source_file(sha).read_bytes()
                ops.append(message)
        snapshot = self.agree(snapshot)
        self.resumed = bool(snapshot["resumed"])
        if self._leader is not None:
            return
        assert self._tmp is not None
        for message in snapshot["ops"]:
            sha = message.get("sha256")
            if sha:
                capture_source(self._tmp, message["code"], sha)
            op = Op.from_dict(message["op"])
            result = self.controller.apply_op(op, {"step": 0}, sha256=sha)
            if result.decision == "failed":
                self._report_failure(op, result.error, {"step": 0}, "replay")

    def _global_rank0(self) -> int:
        if self._group is None:
            return 0
        import torch.distributed as dist

        return int(dist.get_global_rank(self._group, 0))

    def status(self) -> dict[str, Any]:
        """Rank 0: the state-file snapshot; other ranks: their callbacks and rank."""
        if self._leader is not None:
            return self._leader.status()
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "callbacks": self.controller.status(),
        }

    def close(self) -> list[LedgerEntry] | None:
        """Close this rank's callbacks (rank 0 also writes the final state). No collective:
        ranks may end at different moments. Rank 0 returns what
        :meth:`HotKernel.close <hotcb.kernel.HotKernel.close>` returns (the schedule
        entries missed under ``strict``, or None), the other ranks None."""
        if self._closed:
            return None
        self._closed = True
        if self._pending is not None:  # every rank started it: it completes
            with contextlib.suppress(Exception):
                self._pending.work.wait()
            self._pending = None
        if self._leader is not None:
            if self._last_env is not None:
                self._leader.ended_at(self._last_env)
            return self._leader.close()
        self.controller.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return None

    def __enter__(self) -> DistributedHotKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Round:
    """One exchange between ranks: a background all_reduce of how many items each rank has
    to share, started at one sync point and finished at the next."""

    work: Any
    count: Any
    payload: dict[str, Any]
    lines: list[CommandLine | None]

    @classmethod
    def start(cls, payload: dict[str, Any], lines: list[CommandLine | None], group: Any) -> _Round:
        import torch
        import torch.distributed as dist

        n = len(payload["ops"]) + len(payload["reports"])
        count = torch.tensor([n], dtype=torch.int64, device=_collective_device(group))
        work = dist.all_reduce(count, group=group, async_op=True)
        return cls(work, count, payload, lines)

    def finish(self, group: Any, world_size: int) -> list[dict[str, Any]] | None:
        """Everyone's payload, or None when nobody had anything to share."""
        import torch.distributed as dist

        self.work.wait()
        if int(self.count.item()) == 0:
            return None
        out: list[Any] = [None] * world_size
        dist.all_gather_object(out, self.payload, group=group)
        return out


def _collective_device(group: Any) -> Any:
    """Where a small tensor must live for this group's backend (CUDA for NCCL)."""
    import torch
    import torch.distributed as dist

    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
