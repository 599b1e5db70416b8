"""``HotKernel``: owns a run directory, polls for commands, routes them, records them.

The training loop calls :meth:`HotKernel.apply` at its safe points (after a step,
after validation, ...). Each call is cheap when nothing changed: a clock check, then
each module's dispatch loop. Every ``poll_interval`` seconds the kernel also takes in
new commands (:class:`~hotcb.intake.CommandIntake`: read, trust-checked, parsed at the
edge; a bad line becomes a ``failed`` ledger entry naming its line and the problem),
routes each valid op by its ``module`` field to that module (the kernel knows no module
by name, see :mod:`hotcb.modules.base`), records every outcome in ``hotcb.applied.jsonl``
(:class:`~hotcb.recorder.EntryRecorder`) and rewrites ``hotcb.state.json`` when the set
changed. Nothing a command or a callback does makes ``apply`` raise.

Example:
    >>> import tempfile
    >>> from hotcb.stream import CommandStream
    >>> kernel = HotKernel(run_dir=tempfile.mkdtemp(), poll_interval=0, register=False)
    >>> _ = CommandStream(kernel.run_dir.commands).append({"op": "load", "id": "hb",
    ...     "target": {"kind": "module", "path": "hotcb.modules.cb.callbacks.heartbeat",
    ...                "symbol": "HeartbeatCallback"}, "init": {"every": 2}})
    >>> for step in range(1, 4):
    ...     kernel.apply({"step": step, "log": print}, events=["train_step_end"])
    [hb] train_step_end step=2
    >>> kernel.close()

Restarting in a run dir that already has a ledger resumes: the applied ops are
replayed (``source: replay``) before the first step, and reading continues after the
last command processed, so nothing is applied twice and nothing is lost. A ledger another
user owns or can write is never replayed (see :mod:`hotcb.trust`): it is moved aside and the
run starts fresh, saying why in the log, the ledger and the state's ``warnings``. If the
commands file was replaced or rewritten while the run was down, the kernel notices
(the ledger keeps a fingerprint of the bytes read) and reads the new file from the top.

One kernel owns a run dir at a time: it holds ``hotcb.lock`` (see :mod:`hotcb.runlock`)
until :meth:`HotKernel.close`; a second kernel on the same dir refuses to start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from time import monotonic
from typing import Any, Protocol, runtime_checkable

from hotcb.desired import DesiredStateFile
from hotcb.freeze import KERNEL_MODULE, frozen_reason, parse_freeze
from hotcb.intake import Command, CommandIntake
from hotcb.ledger import FsyncPolicy, Ledger, LedgerEntry, read_ledger
from hotcb.logfile import LogFile
from hotcb.modules.base import Env, KernelModule, OpResult
from hotcb.modules.cb.controller import HotController
from hotcb.modules.cb.module import CallbackModule
from hotcb.ops import DEFAULT_MODULE, CommandError, Op, module_hint, register_ops
from hotcb.recorder import EntryRecorder, op_payload
from hotcb.replay import Due, ScheduleRunner
from hotcb.rundir import RunDir
from hotcb.runlock import RunDirLock
from hotcb.schedule import Schedule
from hotcb.state import HOSTNAME, STATE_VERSION, write_state
from hotcb.stream import CommandLine
from hotcb.trust import check_control_file, check_run_dir

__all__ = ["HotKernel", "Kernel", "KernelModule"]

log = logging.getLogger("hotcb")

#: Keys of ``hotcb.state.json`` the kernel writes itself (a module's ``state_key`` may not
#: be one of them).
_KERNEL_STATE_KEYS = frozenset(
    {
        "version",
        "run_dir",
        "pid",
        "host",
        "started",
        "updated",
        "closed",
        "step",
        "epoch",
        "ledger_seq",
        "modules",
        "warnings",
        "allowed_factories",
        "world_size",
        "sync_every",
        "freeze",
        "schedule",
        "state_interval",
        "costs",
    }
)


@runtime_checkable
class Kernel(Protocol):
    """What every hotcb kernel offers a training loop: :class:`HotKernel` and
    :class:`~hotcb.distributed.DistributedHotKernel` (what :meth:`HotKernel.from_config`
    returns)."""

    @property
    def run_dir(self) -> RunDir: ...

    @property
    def modules(self) -> Mapping[str, KernelModule]: ...

    @property
    def callbacks(self) -> HotController: ...

    #: this process's rank (0 without torch.distributed)
    @property
    def rank(self) -> int: ...

    #: True if the state was rebuilt from an existing ledger
    @property
    def resumed(self) -> bool: ...

    def apply(self, env: Env, events: Sequence[str]) -> None:
        """Apply pending commands at this safe point, then dispatch ``events``."""
        ...

    def submit(self, op: Op, *, source: str = "config", env: Env | None = None) -> LedgerEntry:
        """Apply ``op`` now and return its ledger entry."""
        ...

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value``, on every rank (the value itself in one process)."""
        ...

    def status(self) -> dict[str, Any]: ...

    def load_schedule(self, schedule: Schedule) -> list[str]:
        """Apply ``schedule``'s entries when their steps come; the problems found."""
        ...

    def close(self) -> list[LedgerEntry] | None: ...


class HotKernel:
    """The hotcb runtime inside a training process.

    Args:
        run_dir: the run directory (created, mode 0700). Under Hydra use
            :meth:`from_config`, which defaults it to Hydra's output dir.
        poll_interval: seconds between reads of the command file. 0 reads at every
            ``apply``; the default (50 ms) keeps an idle ``apply`` to a clock check.
        auto_disable_on_error: disable a callback whose ``handle`` raises (default True).
        fsync: ``"never"`` (default: each ledger line is written and flushed to the OS,
            which survives a process crash) or ``"always"`` (also ``fsync`` each line,
            which survives power loss).
        state_interval: at most this often (seconds) ``hotcb.state.json`` is refreshed
            just to report a new step; changes to the set are written at once.
        commands_path / config_path: a different command file / a desired-state YAML
            (default: ``run_dir/hotcb.yaml``, followed once it exists).
        modules: kernel modules by name (default: the hot-callback module only,
            :class:`~hotcb.modules.cb.module.CallbackModule`). The kernel knows none by
            name: it routes each op by its ``module`` field (see :mod:`hotcb.modules.base`).
        register: list this run in the user's live-run registry so ``hotcb`` finds it
            without ``--dir`` (default True).
        resume: replay an existing ledger in ``run_dir`` before the first step.
        allowed_factories: target names (``package.module.function``) of factories that
            may be loaded although not marked with
            :func:`~hotcb.modules.cb.protocol.hot_factory` (code you cannot decorate).
            Every other target must be a class with ``handle`` and ``set_params``, or a
            marked factory (docs/protocol.md).
        freeze: ``"off"`` (default), ``"prod"`` or ``"replay"``: a frozen run records every
            command from the command file as ``ignored`` and changes nothing, except the
            ``freeze`` command that switches the mode (see :mod:`hotcb.freeze`). A resumed
            run keeps a mode switched live before it stopped.
        debounce_steps: read commands at most every this many ``apply`` calls, on top of
            ``poll_interval`` (default 1: the time gate alone). The reference project's
            option; a count above 1 costs a counter per ``apply``.
        log_path: also append hotcb's log (INFO and up: ops applied, failures, warnings)
            to this file (see :mod:`hotcb.logfile`).
        poll_interval_sec: the reference project's name of ``poll_interval``.

    Raises :class:`~hotcb.runlock.RunDirBusy` if another kernel holds ``run_dir``.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        *,
        poll_interval: float = 0.05,
        auto_disable_on_error: bool = True,
        fsync: FsyncPolicy = "never",
        state_interval: float = 1.0,
        commands_path: str | os.PathLike[str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        modules: Mapping[str, KernelModule] | None = None,
        register: bool = True,
        resume: bool = True,
        allowed_factories: Sequence[str] = (),
        freeze: str = "off",
        debounce_steps: int = 1,
        log_path: str | os.PathLike[str] | None = None,
        poll_interval_sec: float | None = None,
    ) -> None:
        #: ``off``, ``prod`` or ``replay`` (see :mod:`hotcb.freeze`)
        self.freeze = parse_freeze(freeze)
        if poll_interval_sec is not None:
            poll_interval = poll_interval_sec
        if isinstance(debounce_steps, bool) or not isinstance(debounce_steps, int):
            raise ValueError(f"debounce_steps must be an integer >= 1, got {debounce_steps!r}")
        if debounce_steps < 1:
            raise ValueError(f"debounce_steps must be an integer >= 1, got {debounce_steps!r}")
        #: read commands at most every this many ``apply`` calls (and ``poll_interval``)
        self.debounce_steps = debounce_steps
        self._countdown = 0
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be >= 0 seconds, got {poll_interval}")
        if isinstance(allowed_factories, str) or not all(
            isinstance(name, str) for name in allowed_factories
        ):
            raise ValueError(
                f"allowed_factories must be a list of target names, got {allowed_factories!r}"
            )
        self.allowed_factories = frozenset(allowed_factories)
        self.run_dir = RunDir(run_dir).ensure()
        self._lock = RunDirLock.acquire(self.run_dir.lock)
        self._log_file: LogFile | None = None
        try:
            if log_path is not None:
                self._log_file = LogFile(log_path)
            self._start(
                poll_interval=poll_interval,
                auto_disable_on_error=auto_disable_on_error,
                fsync=fsync,
                state_interval=state_interval,
                commands_path=commands_path,
                config_path=config_path,
                modules=modules,
                register=register,
                resume=resume,
            )
        except BaseException:
            if self._log_file is not None:
                self._log_file.close()
            self._lock.release()
            raise
        self._arm()  # the plain apply, unless debounced or with scheduled ops pending
        # runs close() at interpreter exit if the loop never called it, and releases the
        # run dir if the kernel is dropped without close()
        self._finalizer = weakref.finalize(self, _finalize, weakref.ref(self), self._lock)

    def _start(
        self,
        *,
        poll_interval: float,
        auto_disable_on_error: bool,
        fsync: FsyncPolicy,
        state_interval: float,
        commands_path: str | os.PathLike[str] | None,
        config_path: str | os.PathLike[str] | None,
        modules: Mapping[str, KernelModule] | None,
        register: bool,
        resume: bool,
    ) -> None:
        self.poll_interval = float(poll_interval)
        self.state_interval = float(state_interval)
        #: trust problems found at start (run dir others can write, refused ledger): logged,
        #: recorded in the ledger, and shown in ``hotcb.state.json`` / ``hotcb status``
        self.warnings: list[str] = []
        refused_ledger = _set_aside_untrusted(self.run_dir.ledger)
        self.ledger = Ledger(self.run_dir.ledger, fsync=fsync)
        #: writes ledger entries stamped with where the loop is
        self.entries = EntryRecorder(self.ledger)
        self._report_trust(check_run_dir(self.run_dir.path).warning, refused_ledger)
        if modules is None:
            modules = {
                CallbackModule.name: CallbackModule(auto_disable_on_error=auto_disable_on_error)
            }
        self.modules: dict[str, KernelModule] = _checked_modules(modules)
        for module in self.modules.values():
            module.attach(self)
        self._dispatch = _dispatch_of(self.modules.values())
        commands = (
            Path(commands_path).expanduser().resolve() if commands_path else self.run_dir.commands
        )
        if config_path is None:
            config_path = self.run_dir.desired  # followed once it exists (hotcb init writes it)
        self._desired = DesiredStateFile(config_path) if config_path is not None else None
        self._state_error: str | None = None
        self._recreate_error: str | None = None
        self._env: Env = {}
        self._changed = True
        self._next_poll = 0.0
        self._next_state = 0.0
        self._closed = False
        self._started = time.time()
        self.resumed = False
        #: the ops due at later steps (the config's schedule, ``--at-step`` commands)
        self.schedule = ScheduleRunner()
        self._scheduling = False
        self._next_due = _as_step(self.schedule.next_due)
        #: the failed entries of schedule entries missed under ``strict`` (close returns them)
        self._missed_failed: list[LedgerEntry] = []
        offset, lineno, mark = 0, 0, None
        if resume and refused_ledger is None:
            offset, lineno, mark = self._replay()
        self._record_freeze_at_start(resume and refused_ledger is None)
        #: reads, trust-checks, parses and records the command file
        self.intake = CommandIntake(commands, self.entries, offset=offset, lineno=lineno, mark=mark)
        self._registration: Path | None = None
        if register:
            self._registration = _register(self.run_dir.path)
        self.write_state()

    # -- Hydra ----------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, cfg: Any, run_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Kernel:
        """Build a kernel from a composed Hydra config (see :func:`hotcb.launch.kernel_from_config`):
        a ``HotKernel``, or under an initialized ``torch.distributed`` group of several
        processes a :class:`~hotcb.distributed.DistributedHotKernel`."""
        from hotcb.launch import kernel_from_config  # it builds kernels: imported on use

        return kernel_from_config(cfg, run_dir=run_dir, **kwargs)

    #: this process's rank: a HotKernel is one process (see :class:`Kernel`)
    rank = 0

    @property
    def callbacks(self) -> HotController:
        """The hot-callback controller (``kernel.modules["cb"].controller``): ``status()``,
        ``get(id)``, ``ids``. Raises ``AttributeError`` if this kernel runs no callback
        module."""
        module = self.modules.get(CallbackModule.name)
        if not isinstance(module, CallbackModule):
            raise AttributeError(
                f"this kernel has no callback module (modules: {', '.join(self.modules)})"
            )
        return module.controller

    def agree(self, value: Any) -> Any:
        """``value`` (one process agrees with itself; see :class:`Kernel`)."""
        return value

    # -- the hot path ---------------------------------------------------------------

    def apply(self, env: Env, events: Sequence[str]) -> None:
        """Apply pending commands (at most every ``poll_interval``), then dispatch
        ``events`` to every module. Never raises because of a command or a callback."""
        self._env = env  # the last step seen, however the loop builds its dicts
        if monotonic() >= self._next_poll:
            self._poll(env, events)
        self._dispatch(env, events)

    def _apply_scheduled(self, env: Env, events: Sequence[str]) -> None:
        """``apply`` while scheduled ops are pending (see :meth:`load_schedule`): the same,
        after applying the ops due at this step and event."""
        self._env = env
        try:
            due = env["step"] >= self._next_due
        except (KeyError, TypeError):  # no step, or none yet: nothing is due
            due = False
        if due:
            self.run_schedule(env, events)
        self._idle_apply(env, events)

    # -- the schedule -----------------------------------------------------------------

    def load_schedule(self, schedule: Schedule) -> list[str]:
        """Apply the entries of ``schedule`` when the loop reaches their (step, event),
        recorded with ``source: schedule`` (see :mod:`hotcb.replay`). Returns the problems
        of entries that cannot apply (left out). ``apply`` costs one more comparison while
        an entry is pending, nothing once none is."""
        problems = self.schedule.load(schedule)
        self._scheduling = True
        self._arm()
        self._changed = True
        return problems

    def _arm(self) -> None:
        # an idle run without pending ops keeps the plain `apply`: no cost on the hot path
        self._next_due = _as_step(self.schedule.next_due)
        if self.schedule.pending:
            self.__dict__["apply"] = self._apply_scheduled
        elif self.debounce_steps > 1:
            self.__dict__["apply"] = self._apply_debounced
        else:
            self.__dict__.pop("apply", None)

    def _idle_apply(self, env: Env, events: Sequence[str]) -> None:
        """:meth:`apply` as it is with no scheduled op pending (plain or debounced)."""
        if self.debounce_steps > 1:
            self._apply_debounced(env, events)
        else:
            HotKernel.apply(self, env, events)

    def run_schedule(self, env: Env, events: Sequence[str]) -> None:
        """Apply the ops due at this safe point; record the ones whose step passed."""
        event = events[0] if events else None
        self._env = env
        now, missed = self.schedule.take(env.get("step"), event)
        for due in now:
            extra = {"schedule_key": due.key} if due.key is not None else None
            self.submit(due.op, source=due.source, env=env, event=event, extra=extra)
        for due, reason in missed:
            self._record_missed(due, reason, env, event)
        self._arm()

    def _record_missed(
        self, due: Due, reason: str, env: Env | None, event: str | None, *, closing: bool = False
    ) -> LedgerEntry | None:
        """Record an op the run did not apply at its step: ``failed`` under the ``strict``
        policy and for an ``--at-step`` command reached late, else ``ignored`` (an entry
        of a ``best_effort`` schedule the run never reached is only counted in the log)."""
        self.schedule.note_missed(due, reason)
        self._changed = True
        cli = due.key is None
        strict = self.schedule.policy == "strict"
        if not cli and not strict and closing:
            return None
        decision = "failed" if strict or (cli and not closing) else "ignored"
        payload = op_payload(due.op, OpResult(decision), {"scheduled_step": due.step})
        if due.key is not None:
            payload["schedule_key"] = due.key
        if decision == "failed":
            log.error("hotcb: scheduled %s %s missed: %s", due.op.op, due.op.id, reason)
        entry = self.entries.record(
            module=due.op.module,
            op=due.op.op,
            id=due.op.id,
            source=due.source,
            decision=decision,
            error=reason,
            payload=payload,
            env=env,
            event=event,
        )
        if decision == "failed" and not cli:
            self._missed_failed.append(entry)
        return entry

    def _at_step(self, op: Op, env: Env, event: str | None, line: CommandLine | None) -> bool:
        """A command with ``at_step``: True to apply it now (its step is this one), else
        it is scheduled (or refused: the step passed) and recorded as such."""
        step = env.get("step")
        at = op.at_step
        assert at is not None
        if isinstance(step, int) and at == step:
            return True
        if not isinstance(step, int) or at < step:
            why = (
                f"step {at} already passed: the run is at step {step}"
                if isinstance(step, int)
                else "--at-step needs a loop that passes env['step']"
            )
            log.error("hotcb: %s %s refused: %s", op.op, op.id, why)
            self.entries.record(
                module=op.module,
                op=op.op,
                id=op.id,
                source="external",
                decision="failed",
                error=why,
                payload=op_payload(op, OpResult("failed")),
                env=env,
                event=event,
                line=line,
            )
            return False
        self.schedule.add(op, at)
        self._scheduling = True
        self._changed = True
        self.entries.record(
            module="kernel",
            op="schedule",
            id=op.id,
            source="external",
            payload={"op": op.to_dict(), "at_step": at},
            env=env,
            event=event,
            line=line,
        )
        log.info("hotcb: %s %s scheduled at step %d", op.op, op.id, at)
        self._arm()
        return False

    def _apply_debounced(self, env: Env, events: Sequence[str]) -> None:
        """:meth:`apply` with ``debounce_steps`` > 1: the clock is read only once that
        many calls have passed since the last read of the command file."""
        self._env = env
        self._countdown -= 1
        if self._countdown <= 0 and monotonic() >= self._next_poll:
            self._countdown = self.debounce_steps
            self._poll(env, events)
        self._dispatch(env, events)

    # -- commands -------------------------------------------------------------------

    def _poll(self, env: Env, events: Sequence[str]) -> None:
        now = monotonic()
        self._next_poll = now + self.poll_interval
        event = events[0] if events else None
        for command in self.read_commands(env, event):
            if command.op.at_step is not None and not self._at_step(
                command.op, env, event, command.line
            ):
                continue
            self.submit(command.op, source="external", env=env, event=event, line=command.line)
        if self._desired is not None:
            self._reconcile_desired(env, event)
        for module in self.modules.values():
            try:
                if module.poll(env):
                    self._changed = True
            except Exception:
                log.exception("hotcb: module %r failed during poll", module.name)
        self.refresh_state(now)

    def read_commands(self, env: Env, event: str | None) -> Iterator[Command]:
        """The new valid commands, read at this safe point, one at a time (bad lines are
        recorded as ``invalid`` as the iteration passes them: record each command before
        taking the next and the ledger keeps the file's order). ``env`` and ``event`` say
        where the loop is, for the entries made until the next read. Recreates the run dir
        first if it was removed."""
        self._env = env
        self.entries.at(env, event)
        self._ensure_run_dir()
        return self._admitted(self.intake.read())

    def _admitted(self, commands: Iterator[Command]) -> Iterator[Command]:
        """The commands to apply: the kernel's own (``freeze``) are applied here, and a
        frozen run records every other one as ``ignored`` (nothing changes)."""
        for command in commands:
            op = command.op
            if op.module == KERNEL_MODULE:
                self._apply_freeze(command)
            elif self.freeze != "off":
                log.warning("hotcb: %s %s ignored: frozen (freeze: %s)", op.op, op.id, self.freeze)
                self.entries.record(
                    module=op.module,
                    op=op.op,
                    id=op.id,
                    source="external",
                    decision="ignored",
                    error=frozen_reason(self.freeze),
                    payload=op_payload(op, OpResult("ignored")),
                    line=command.line,
                )
            else:
                yield command

    def _apply_freeze(self, command: Command) -> None:
        """Switch the freeze mode (the one command a frozen run takes); record it."""
        op = command.op
        previous = self.freeze
        error = None
        try:
            self.freeze = parse_freeze(op.params.get("mode"))
        except ValueError as exc:
            error = str(exc)
        else:
            log.info("hotcb: freeze %s (was %s)", self.freeze, previous)
            self._changed = True
        self.entries.record(
            module=KERNEL_MODULE,
            op=op.op,
            id=op.id,
            source="external",
            decision="failed" if error else "applied",
            error=error,
            payload={"params": {"mode": self.freeze}, "previous": previous},
            line=command.line,
        )

    def _record_freeze_at_start(self, resume: bool) -> None:
        """A resumed run keeps a mode switched live before it stopped (its last
        ``freeze`` entry not made at a start); a frozen start is said in the ledger."""
        source = "config"
        earlier = read_ledger(self.run_dir.ledger).entries if resume else []
        for entry in reversed(earlier):
            if entry.module == KERNEL_MODULE and entry.op == "freeze":
                if entry.source != "config" and entry.decision == "applied":
                    with contextlib.suppress(ValueError):
                        mode = (entry.payload.get("params") or {}).get("mode")
                        self.freeze, source = parse_freeze(mode), "replay"
                break
        if self.freeze != "off":
            self.entries.record(
                module=KERNEL_MODULE,
                op="freeze",
                id=KERNEL_MODULE,
                source=source,
                payload={"params": {"mode": self.freeze}},
                env={"step": 0},
            )

    def _ensure_run_dir(self) -> None:
        """Recreate the run dir (and ``hotcb.sources/``) if it was removed mid-run.

        One ``stat`` per poll when all is well. A removal is said once in the log, and
        the recreated ledger starts with an ``op: recreate`` entry holding the live state.
        """
        if os.path.isdir(self.run_dir.sources):
            return
        gone = self.run_dir.path if not self.run_dir.path.is_dir() else self.run_dir.sources
        try:
            self.run_dir.ensure()
        except OSError as exc:
            reason = f"{exc.strerror or exc} ({self.run_dir.path})"
            if reason != self._recreate_error:
                log.error("hotcb: the run dir was removed and cannot be recreated: %s", reason)
            self._recreate_error = reason
            return
        self._recreate_error = None
        problem = self._lock.renew()
        log.warning(
            "hotcb: %s was removed while the run was going; recreated it. The ledger and "
            "the state file start again there; callbacks loaded before were not replayed "
            "into the new ledger (its entry op: recreate lists them).%s",
            gone,
            f" Warning: {problem}" if problem else "",
        )
        self._changed = True
        self.entries.record(
            module="kernel",
            op="recreate",
            error=problem,
            payload={"removed": str(gone), "state": self._module_states()},
        )

    def refresh_state(self, now: float | None = None) -> None:
        """Rewrite ``hotcb.state.json`` if the set changed, or (at most every
        ``state_interval``) to report progress."""
        now = monotonic() if now is None else now
        if self._changed or (now >= self._next_state and self.entries.step is not None):
            self.write_state()
            self._next_state = now + self.state_interval

    def submit(
        self,
        op: Op,
        *,
        source: str = "config",
        env: Env | None = None,
        event: str | None = None,
        line: CommandLine | None = None,
        sha256: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """Apply ``op`` now, record it, and return its ledger entry.

        Used for the initial callback set (``source="config"``, step 0) and for every
        command read (``source="external"``, with its ``line``). ``event``: the event being
        applied (None between steps); ``sha256``: the captured source a load uses;
        ``extra``: more facts for the entry's payload.
        """
        env = env if env is not None else self._env or {"step": 0}
        module = self.modules.get(op.module)
        if module is None:
            result = OpResult(
                "failed",
                f"this run has no {op.module!r} module (it has: {', '.join(self.modules)})"
                + module_hint(op.module),
            )
        else:
            try:
                result = module.apply_op(op, env, sha256=sha256)
            except Exception as exc:  # a module bug must not stop training either
                log.exception("hotcb: module %r failed on %s", op.module, op.op)
                result = OpResult("failed", f"{type(exc).__name__}: {exc}")
        if result.decision == "failed":
            where = f" ({self.intake.path.name} line {line.lineno})" if line else ""
            log.error("hotcb: %s %s failed%s: %s", op.op, op.id, where, result.error)
        else:
            log.info("hotcb: %s %s %s", op.op, op.id, result.decision)
            self._changed = True
        return self.entries.record(
            module=op.module,
            op=op.op,
            id=op.id,
            source=source,
            decision=result.decision,
            error=result.error,
            payload=op_payload(op, result, extra),
            env=env,
            event=event,
            line=line,
        )

    def _reconcile_desired(self, env: Env, event: str | None) -> None:
        """Hand a changed desired-state file to every module that reconciles one, and
        submit the ops they return (``source: config``)."""
        desired = self._desired
        assert desired is not None
        if not self.intake.trusted(desired.path):
            return
        ops: list[Op] = []
        try:
            document = desired.read_if_changed()
            if document is None:
                return
            for module in self.modules.values():
                reconcile = getattr(module, "reconcile", None)
                if reconcile is not None:
                    try:
                        ops.extend(reconcile(document))
                    except CommandError as exc:
                        raise exc.located(path=desired.path) from None
        except CommandError as exc:
            log.error("hotcb: desired-state file ignored: %s", exc)
            self.entries.record(
                module=DEFAULT_MODULE,
                op="invalid",
                source="config",
                decision="failed",
                error=exc,
            )
            return
        for op in ops:
            self.submit(op, source="config", env=env, event=event)

    # -- resume ---------------------------------------------------------------------

    def _report_trust(self, run_dir_warning: str | None, refused_ledger: str | None) -> None:
        """Say, once at start, what :mod:`hotcb.trust` found: log, ledger and state."""
        if run_dir_warning:
            log.warning("hotcb: WARNING: %s", run_dir_warning)
            self.warnings.append(run_dir_warning)
            self.entries.record(
                module="kernel",
                op="warn",
                error=run_dir_warning,
                payload={"path": str(self.run_dir.path)},
            )
        if refused_ledger:
            log.error("hotcb: %s", refused_ledger)
            self.warnings.append(refused_ledger)
            self.entries.record(
                module="kernel",
                op="refuse",
                decision="failed",
                error=refused_ledger,
                payload={"path": str(self.run_dir.ledger)},
            )

    def _replay(self) -> tuple[int, int, Mapping[str, Any] | None]:
        """Have each module re-apply its applied entries of an existing ledger; return where
        to continue reading commands: the offset, line number and
        :meth:`~hotcb.stream.CommandLine.mark` of the last command processed (the mark is
        None in a ledger written before hotcb kept it)."""
        read = read_ledger(self.run_dir.ledger)
        for warning in read.warnings():
            log.warning("hotcb: %s", warning)
        offset, lineno = 0, 0
        mark: Mapping[str, Any] | None = None
        replayable = [
            e for e in read.entries if e.decision == "applied" and e.module in self.modules
        ]
        for entry in read.entries:
            if entry.offset is not None and entry.line is not None:
                offset, lineno, mark = entry.offset, entry.line, entry.payload
            if entry.module == "kernel" and entry.op == "reset":
                offset, lineno, mark = 0, 0, None
        if not replayable:
            return offset, lineno, mark
        self.resumed = True
        for entry in replayable:
            try:
                result = self.modules[entry.module].replay(entry)
            except Exception as exc:  # a module bug must not stop the start
                log.exception("hotcb: module %r failed to replay seq %s", entry.module, entry.seq)
                result = OpResult("failed", f"{type(exc).__name__}: {exc}")
            if result is not None and result.decision == "failed":
                log.error(
                    "hotcb: replay of ledger seq %s (%s %s) failed: %s",
                    entry.seq,
                    entry.op,
                    entry.id,
                    result.error,
                )
        self.entries.record(
            module="kernel",
            op="resume",
            source="replay",
            payload={
                "entries": len(replayable),
                "offset": offset,
                "line": lineno,
                "state": self._module_states(),
            },
        )
        log.info(
            "hotcb: resumed %s: replayed %d ledger entries, reading commands after line %d",
            self.run_dir.path,
            len(replayable),
            lineno,
        )
        return offset, lineno, mark

    # -- state ----------------------------------------------------------------------

    def recorder(self, module: str) -> Callable[..., LedgerEntry]:
        """A ``record(op=, id=, source=, decision=, payload=, error=, env=)`` function
        for changes ``module`` makes on its own (auto-disable, reload); each one also
        marks the state changed."""
        return self.entries.for_module(module, on_record=self.mark_changed)

    def mark_changed(self) -> None:
        """Ask for ``hotcb.state.json`` to be rewritten at the next safe point."""
        self._changed = True

    def redispatch(self) -> None:
        """Rebuild what ``apply`` dispatches to from every module's ``dispatch`` now (a
        module calls it when it gains or loses per-step work; see
        :mod:`hotcb.modules.base`)."""
        self._dispatch = _dispatch_of(self.modules.values())

    def _module_states(self) -> dict[str, Any]:
        return {name: module.status() for name, module in self.modules.items()}

    def status(self) -> dict[str, Any]:
        """The snapshot written to ``hotcb.state.json`` (see :mod:`hotcb.state`): the
        kernel's own keys, and each module's status under its ``state_key``
        (``callbacks`` for the callback module)."""
        snapshot: dict[str, Any] = {
            "version": STATE_VERSION,
            "run_dir": str(self.run_dir.path),
            "pid": os.getpid(),
            "host": HOSTNAME,
            "started": self._started,
            "updated": time.time(),
            "state_interval": self.state_interval,
            "closed": self._closed,
            "step": self.entries.step,
            "epoch": self.entries.epoch,
            "ledger_seq": self.ledger.last_seq,
            "modules": sorted(self.modules),
            "warnings": list(self.warnings),
            "allowed_factories": sorted(self.allowed_factories),
            "freeze": self.freeze,
        }
        costs: dict[str, Any] = {}
        for module in self.modules.values():
            snapshot[module.state_key] = module.status()
            measured = getattr(module, "costs", None)  # optional: what its calls cost
            if callable(measured):
                costs[module.name] = measured()
        snapshot["costs"] = costs
        if self._scheduling:
            snapshot["schedule"] = self.schedule.status()
        return snapshot

    def write_state(self) -> None:
        """Rewrite ``hotcb.state.json`` now (a failure is logged once; training goes on)."""
        self._changed = False
        try:
            write_state(self.run_dir.state, self.status())
        except OSError as exc:
            reason = f"{exc.strerror or exc} ({self.run_dir.state})"
            if self._state_error != reason:
                log.error("hotcb: cannot write the state file: %s. Training continues.", reason)
            self._state_error = reason
        else:
            if self._state_error is not None:
                log.warning("hotcb: the state file is written again (%s)", self.run_dir.state)
            self._state_error = None

    def close(self) -> list[LedgerEntry] | None:
        """Write the final state, close every callback, leave the live-run registry.

        Returns the ``failed`` ledger entries of the scheduled ops the run missed under the
        ``strict`` policy, None when there are none (or the policy is ``best_effort``), so a
        script can fail the job: ``sys.exit(1 if kernel.close() else 0)``. It never raises
        for them.
        """
        if self._closed:
            return None
        self._closed = True
        # the env of the last apply (a fresh dict per step or one reused): where the run ended
        self.entries.step = self._env.get("step", self.entries.step)
        self.entries.epoch = self._env.get("epoch", self.entries.epoch)
        failed = self._close_schedule()
        try:
            self.write_state()
        finally:
            for module in self.modules.values():
                try:
                    module.close()
                except Exception:
                    log.exception("hotcb: closing module %r failed", module.name)
            if not self.ledger.flush():
                log.error(
                    "hotcb: %d ledger entries could not be written before the run closed "
                    "(%s); a resumed run will not replay them",
                    self.ledger.unwritten,
                    self.run_dir.ledger,
                )
            if self._registration is not None:
                _unregister(self._registration)
                self._registration = None
            if self._log_file is not None:
                self._log_file.close()
            self._lock.release()
            self._finalizer.detach()
        return failed or None

    def _close_schedule(self) -> list[LedgerEntry]:
        """Record what the schedule never reached; the ``failed`` entries (strict)."""
        remaining = self.schedule.remaining(self.entries.step)
        self._arm()
        skipped = 0
        for due, reason in remaining:
            if self._record_missed(due, reason, None, None, closing=True) is None:
                skipped += 1
        if skipped:
            log.info(
                "hotcb: %d scheduled ops were not reached before the run ended (best_effort)",
                skipped,
            )
        return list(self._missed_failed)

    def __enter__(self) -> HotKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_step(due: float) -> int:
    """A due step as an int (an int step compares faster with an int than with inf)."""
    return sys.maxsize if due == float("inf") else int(due)


def _finalize(ref: weakref.ref[HotKernel], lock: RunDirLock) -> None:
    kernel = ref()
    if kernel is not None:
        kernel.close()
    lock.release()


def _checked_modules(modules: Mapping[str, KernelModule]) -> dict[str, KernelModule]:
    """The kernel's modules, each under its own name and state key, their ops registered
    so commands naming them parse (raises ``ValueError`` for a clash)."""
    keys: dict[str, str] = {}
    for name, module in modules.items():
        if name != module.name or name == "kernel":
            raise ValueError(
                f"module {module.name!r} must be given under its own name, not {name!r} "
                "('kernel' is the kernel's own)"
            )
        key = module.state_key
        if key in _KERNEL_STATE_KEYS or key in keys:
            raise ValueError(
                f"module {name!r}: state_key {key!r} is taken "
                f"(by {keys.get(key, 'the kernel')}); choose another"
            )
        keys[key] = name
        register_ops(name, module.ops)
    return dict(modules)


def _dispatch_of(modules: Iterable[KernelModule]) -> Callable[[Env, Sequence[str]], None]:
    """One callable that dispatches to every module with per-step work (a module whose
    ``dispatch`` is None is left out): that module's own dispatch when there is one (the
    usual case: ``apply`` then costs one call), else a loop.

    >>> from hotcb.modules.cb.module import CallbackModule
    >>> cb = CallbackModule()
    >>> _dispatch_of([cb]) == cb.dispatch
    True
    """
    dispatchers = tuple(d for d in (m.dispatch for m in modules) if d is not None)
    if not dispatchers:
        return _dispatch_nothing
    if len(dispatchers) == 1:
        return dispatchers[0]

    def dispatch_all(env: Env, events: Sequence[str]) -> None:
        for dispatch in dispatchers:
            dispatch(env, events)

    return dispatch_all


def _dispatch_nothing(env: Env, events: Sequence[str]) -> None:
    """The dispatch of a kernel none of whose modules has per-step work."""


def _set_aside_untrusted(ledger: Path) -> str | None:
    """Move a ledger another user owns (or can write) out of the way; say what was done.

    None when the ledger is trusted (or missing). Its entries are never replayed: it is
    renamed to ``hotcb.applied.untrusted-<time>.jsonl`` beside it, for a person to look
    at, and the run starts a fresh ledger.
    """
    refused = check_control_file(ledger).refused
    if refused is None:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        aside = ledger.with_name(f"hotcb.applied.untrusted-{stamp}{f'-{n}' if n else ''}.jsonl")
        if not os.path.lexists(aside):
            break
    try:
        os.rename(ledger, aside)
    except OSError as exc:
        moved = f"it could not be moved aside ({exc.strerror or exc})"
    else:
        moved = f"it was moved to {aside.name} and a fresh ledger started"
    return (
        f"{refused}. The ledger is not replayed, nothing from it is applied ({moved}); "
        "commands are read from the top of the commands file"
    )


def _register(run_dir: Path) -> Path | None:
    try:
        from hotcb.runs import register_live_run
    except ImportError:
        return None
    try:
        return register_live_run(run_dir)
    except Exception as exc:
        log.warning("hotcb: could not register the run for `hotcb` without --dir: %s", exc)
        return None


def _unregister(entry: Path) -> None:
    try:
        from hotcb.runs import unregister_live_run

        unregister_live_run(entry)
    except Exception:
        pass
