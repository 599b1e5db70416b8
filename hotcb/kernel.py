"""``HotKernel``: owns a run directory, polls for commands, routes them, records them.

The training loop calls :meth:`HotKernel.apply` at its safe points (after a step,
after validation, ...). Each call is cheap when nothing changed: a clock check, then
each module's dispatch loop. Every ``poll_interval`` seconds the kernel also reads
new complete lines of ``hotcb.commands.jsonl``, parses each at the edge (a bad line
becomes a ``failed`` ledger entry naming its line and the problem), routes valid ops
to their module, records every outcome in ``hotcb.applied.jsonl`` and rewrites
``hotcb.state.json`` when the set changed. Nothing a command or a callback does makes
``apply`` raise.

Example:
    >>> import tempfile
    >>> from hotcb.stream import CommandStream
    >>> kernel = HotKernel(run_dir=tempfile.mkdtemp(), poll_interval=0, register=False)
    >>> CommandStream(kernel.run_dir.commands).append({"op": "load", "id": "hb",
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
run starts fresh, saying why in the log, the ledger and the state's ``warnings``.

last command processed, so nothing is applied twice and nothing is lost. If the
commands file was replaced or rewritten while the run was down, the kernel notices
(the ledger keeps a fingerprint of the bytes read) and reads the new file from the top.

One kernel owns a run dir at a time: it holds ``hotcb.lock`` (see :mod:`hotcb.runlock`)
until :meth:`HotKernel.close`; a second kernel on the same dir refuses to start.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from time import monotonic
from typing import Any, Protocol

from hotcb.desired import DesiredStateFile
from hotcb.files import NotRegularFileError
from hotcb.ledger import FsyncPolicy, Ledger, LedgerEntry, read_ledger
from hotcb.modules.cb.controller import OpResult
from hotcb.modules.cb.module import CallbackModule
from hotcb.modules.cb.protocol import Env
from hotcb.ops import CommandError, Op, parse_command
from hotcb.rundir import RunDir
from hotcb.runlock import RunDirLock
from hotcb.state import HOSTNAME, STATE_VERSION, write_state
from hotcb.stream import CommandLine, CommandStream
from hotcb.trust import check_control_file, check_run_dir

__all__ = ["HotKernel", "KernelModule"]

log = logging.getLogger("hotcb")


class KernelModule(Protocol):
    """What a kernel module provides (``cb`` is the one hotcb ships)."""

    name: str

    def attach(self, kernel: HotKernel) -> None: ...

    @property
    def dispatch(self) -> Callable[[Env, Sequence[str]], None]: ...

    def apply_op(
        self, op: Op, env: Env | None = None, *, sha256: str | None = None
    ) -> OpResult: ...

    def poll(self, env: Env) -> bool: ...

    def spec(self, cb_id: str) -> dict[str, Any] | None: ...

    def status(self) -> dict[str, dict[str, Any]]: ...

    def close(self) -> None: ...


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
        commands_path / config_path: a different command file / a desired-state YAML.
        modules: kernel modules by name (default: ``{"cb": CallbackModule()}``).
        register: list this run in the user's live-run registry so ``hotcb`` finds it
            without ``--dir`` (default True).
        resume: replay an existing ledger in ``run_dir`` before the first step.
        allowed_factories: target names (``package.module.function``) of factories that
            may be loaded although not marked with
            :func:`~hotcb.modules.cb.protocol.hot_factory` (code you cannot decorate).
            Every other target must be a class with ``handle`` and ``set_params``, or a
            marked factory (docs/protocol.md).

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
    ) -> None:
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
        try:
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
            self._lock.release()
            raise
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
        self._report_trust(check_run_dir(self.run_dir.path).warning, refused_ledger)
        self.modules: dict[str, KernelModule] = dict(
            modules or {"cb": CallbackModule(auto_disable_on_error=auto_disable_on_error)}
        )
        for module in self.modules.values():
            module.attach(self)
        self._dispatch = _one_dispatch(tuple(m.dispatch for m in self.modules.values()))
        self._commands = CommandStream(
            Path(commands_path).expanduser().resolve() if commands_path else self.run_dir.commands
        )
        self._desired = DesiredStateFile(config_path) if config_path is not None else None
        self._desired_owned: set[str] = set()
        self._refusals: dict[str, str] = {}
        self._state_error: str | None = None
        self._read_error: str | None = None
        self._recreate_error: str | None = None
        self._warned: set[str] = set()
        self._env: Env = {}
        self._step: Any = None
        self._epoch: Any = None
        self._changed = True
        self._next_poll = 0.0
        self._next_state = 0.0
        self._closed = False
        self._started = time.time()
        self.resumed = False
        offset, lineno, mark = 0, 0, None
        if resume and refused_ledger is None:
            offset, lineno, mark = self._replay()
        self._reader = self._commands.reader(offset=offset, lineno=lineno, mark=mark)
        self._registration: Path | None = None
        if register:
            self._registration = _register(self.run_dir.path)
        self._write_state()

    # -- Hydra ----------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, cfg: Any, run_dir: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Any:
        """Build a kernel from a composed Hydra config (see :mod:`hotcb.hydra`): a
        ``HotKernel``, or under an initialized ``torch.distributed`` group of several
        processes a :class:`~hotcb.distributed.DistributedHotKernel`."""
        from hotcb.hydra.hydrate import kernel_from_config

        return kernel_from_config(cfg, run_dir=run_dir, **kwargs)

    # -- the hot path ---------------------------------------------------------------

    def apply(self, env: Env, events: Sequence[str]) -> None:
        """Apply pending commands (at most every ``poll_interval``), then dispatch
        ``events`` to every module. Never raises because of a command or a callback."""
        if monotonic() >= self._next_poll:
            self._poll(env, events)
        self._dispatch(env, events)

    # -- commands -------------------------------------------------------------------

    def _poll(self, env: Env, events: Sequence[str]) -> None:
        now = monotonic()
        self._next_poll = now + self.poll_interval
        self._at(env)
        event = events[0] if events else None
        for line in self._read_lines(event):
            op = self._parse_line(line, event)
            if op is not None:
                self._submit(op, "external", env, event, line=line)
        if self._desired is not None:
            self._reconcile_desired(env, event)
        for module in self.modules.values():
            try:
                if module.poll(env):
                    self._changed = True
            except Exception:
                log.exception("hotcb: module %r failed during poll", module.name)
        self._refresh_state(now)

    def _at(self, env: Env) -> None:
        """Remember the env and where the loop is (for entries made between steps)."""
        self._env = env
        self._step = env.get("step")
        self._epoch = env.get("epoch")

    def _read_lines(self, event: str | None) -> list[CommandLine]:
        """New complete command lines (none while the file is not trusted or readable)."""
        self._ensure_run_dir(event)
        lines: list[CommandLine] = []
        if self._trusted(self._commands.path, event):
            try:
                lines = self._reader.read_new()
            except OSError as exc:
                self._unreadable(exc, event)
            else:
                if self._read_error is not None:
                    self._read_error = None
                    log.warning("hotcb: %s can be read again", self._commands.path)
        if self._reader.reset_reason:
            log.warning("hotcb: %s (%s)", self._reader.reset_reason, self._commands.path)
            self.ledger.record(
                module="kernel",
                op="reset",
                id=None,
                source="auto",
                decision="applied",
                error=self._reader.reset_reason,
                step=self._step,
                epoch=self._epoch,
                event=event,
            )
        return lines

    def _unreadable(self, exc: OSError, event: str | None) -> None:
        """Report a commands file that cannot be read (a FIFO, a symlink, no permission)
        once per distinct problem, in the log and the ledger."""
        if isinstance(exc, NotRegularFileError):
            reason = str(exc)
        else:
            reason = f"cannot read {self._commands.path}: {exc.strerror or exc}"
        if reason == self._read_error:
            return
        self._read_error = reason
        log.error("hotcb: %s. Nothing from it is applied until that is fixed.", reason)
        self.ledger.record(
            module="kernel",
            op="refuse",
            id=None,
            source="auto",
            decision="failed",
            error=reason,
            step=self._step,
            epoch=self._epoch,
            event=event,
            payload={"path": str(self._commands.path)},
        )

    def _ensure_run_dir(self, event: str | None) -> None:
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
        self.ledger.record(
            module="kernel",
            op="recreate",
            id=None,
            source="auto",
            decision="applied",
            error=problem,
            step=self._step,
            epoch=self._epoch,
            event=event,
            payload={
                "removed": str(gone),
                "state": {n: m.status() for n, m in self.modules.items()},
            },
        )

    def _refresh_state(self, now: float) -> None:
        """Rewrite the state file if the set changed, or to report progress."""
        if self._changed or (now >= self._next_state and self._step is not None):
            self._write_state()
            self._next_state = now + self.state_interval

    def _trusted(self, path: Path, event: str | None) -> bool:
        """Check a control file's owner and mode; report a change of verdict once."""
        verdict = check_control_file(path)
        key = str(path)
        if verdict.refused:
            if self._refusals.get(key) != verdict.refused:
                self._refusals[key] = verdict.refused
                log.error(
                    "hotcb: %s. Nothing from it is applied until that is fixed.", verdict.refused
                )
                self.ledger.record(
                    module="kernel",
                    op="refuse",
                    id=None,
                    source="auto",
                    decision="failed",
                    error=verdict.refused,
                    step=self._step,
                    epoch=self._epoch,
                    event=event,
                    payload={"path": key},
                )
            return False
        if self._refusals.pop(key, None) is not None:
            log.warning("hotcb: %s is trusted again; reading it", path)
        if verdict.warning and key not in self._warned:
            self._warned.add(key)
            log.warning("hotcb: %s", verdict.warning)
        return True

    def _parse_line(self, line: CommandLine, event: str | None) -> Op | None:
        """The op on ``line``, or None after recording why the line is not one."""
        if line.error is None:
            try:
                return parse_command(line.text)
            except CommandError as exc:
                error = exc.located(path=self._commands.path, line=line.lineno)
        else:
            error = CommandError(line.error, path=self._commands.path, line=line.lineno)
        log.error("hotcb: ignored a bad command: %s", error)
        self.ledger.record(
            module="cb",
            op="invalid",
            id=None,
            source="external",
            decision="failed",
            error=error,
            payload={"raw": line.text[:2000], "length": line.length, **line.mark()},
            step=self._step,
            epoch=self._epoch,
            event=event,
            line=line.lineno,
            offset=line.offset,
        )
        return None

    def submit(self, op: Op, *, source: str = "config", env: Env | None = None) -> LedgerEntry:
        """Apply ``op`` now (between steps), record it, and return its ledger entry.

        Used for the initial callback set (``source="config"``, step 0).
        """
        return self._submit(op, source, env if env is not None else self._env or {"step": 0}, None)

    def _submit(
        self,
        op: Op,
        source: str,
        env: Env,
        event: str | None,
        *,
        line: CommandLine | None = None,
        sha256: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        module = self.modules.get(op.module)
        if module is None:
            result = OpResult(
                "failed", f"unknown module {op.module!r} (have: {', '.join(self.modules)})"
            )
        else:
            try:
                result = module.apply_op(op, env, sha256=sha256)
            except Exception as exc:  # a module bug must not stop training either
                log.exception("hotcb: module %r failed on %s", op.module, op.op)
                result = OpResult("failed", f"{type(exc).__name__}: {exc}")
        payload = {k: v for k, v in op.to_dict().items() if k not in ("module", "op", "id")}
        payload.update(result.details)
        payload.update(extra or {})
        if line is not None:
            payload.update(line.mark())
        if result.decision == "failed":
            where = f" ({self._commands.path.name} line {line.lineno})" if line else ""
            log.error("hotcb: %s %s failed%s: %s", op.op, op.id, where, result.error)
        else:
            log.info("hotcb: %s %s %s", op.op, op.id, result.decision)
            self._changed = True
        step = env.get("step", self._step)
        return self.ledger.record(
            module=op.module,
            op=op.op,
            id=op.id,
            source=source,
            decision=result.decision,
            error=result.error,
            payload=payload,
            step=step,
            epoch=env.get("epoch", self._epoch),
            event=event,
            line=line.lineno if line else None,
            offset=line.offset if line else None,
        )

    def _reconcile_desired(self, env: Env, event: str | None) -> None:
        assert self._desired is not None
        if not self._trusted(self._desired.path, event):
            return
        try:
            desired = self._desired.read_if_changed()
        except CommandError as exc:
            log.error("hotcb: desired-state file ignored: %s", exc)
            self.ledger.record(
                module="cb",
                op="invalid",
                id=None,
                source="config",
                decision="failed",
                error=exc,
                step=self._step,
                epoch=self._epoch,
                event=event,
            )
            return
        if desired is None:
            return
        cb = self.modules.get("cb")
        if cb is None:
            return
        from hotcb.desired import plan

        for op in plan(desired, cb.spec, owned=self._desired_owned):
            self._submit(op, "config", env, event)
        self._desired_owned = set(desired)

    # -- resume ---------------------------------------------------------------------

    def _report_trust(self, run_dir_warning: str | None, refused_ledger: str | None) -> None:
        """Say, once at start, what :mod:`hotcb.trust` found: log, ledger and state."""
        if run_dir_warning:
            log.warning("hotcb: WARNING: %s", run_dir_warning)
            self.warnings.append(run_dir_warning)
            self.ledger.record(
                module="kernel",
                op="warn",
                id=None,
                source="auto",
                decision="applied",
                error=run_dir_warning,
                payload={"path": str(self.run_dir.path)},
            )
        if refused_ledger:
            log.error("hotcb: %s", refused_ledger)
            self.warnings.append(refused_ledger)
            self.ledger.record(
                module="kernel",
                op="refuse",
                id=None,
                source="auto",
                decision="failed",
                error=refused_ledger,
                payload={"path": str(self.run_dir.ledger)},
            )

    def _replay(self) -> tuple[int, int, Mapping[str, Any] | None]:
        """Re-apply an existing ledger; return where to continue reading commands: the
        offset, line number and :meth:`~hotcb.stream.CommandLine.mark` of the last
        command processed (the mark is None in a ledger written before hotcb kept it)."""
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
            op = _op_from_entry(entry)
            if op is None:
                continue
            sha = entry.payload.get("sha256") if op.op == "load" else None
            if entry.op == "reload":
                spec = self.modules[op.module].spec(op.id)
                if spec is not None:  # keep whether it was enabled
                    op = Op(
                        op="load",
                        id=op.id,
                        module=op.module,
                        target=op.target,
                        init=op.init,
                        params=op.params,
                        enabled=spec["enabled"],
                    )
            result = self.modules[op.module].apply_op(op, {"step": entry.step}, sha256=sha)
            if result.decision == "failed":
                log.error(
                    "hotcb: replay of ledger seq %s (%s %s) failed: %s",
                    entry.seq,
                    op.op,
                    op.id,
                    result.error,
                )
        self.ledger.record(
            module="kernel",
            op="resume",
            id=None,
            source="replay",
            decision="applied",
            payload={
                "entries": len(replayable),
                "offset": offset,
                "line": lineno,
                "state": {n: m.status() for n, m in self.modules.items()},
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
        for changes ``module`` makes on its own (auto-disable, reload)."""

        def record(*, env: Env | None = None, **fields: Any) -> LedgerEntry:
            env = env or {}
            self._changed = True
            return self.ledger.record(
                module=module,
                step=env.get("step", self._step),
                epoch=env.get("epoch", self._epoch),
                **fields,
            )

        return record

    def mark_changed(self) -> None:
        """Ask for ``hotcb.state.json`` to be rewritten at the next safe point."""
        self._changed = True

    def status(self) -> dict[str, Any]:
        """The snapshot written to ``hotcb.state.json`` (see :mod:`hotcb.state`)."""
        cb = self.modules.get("cb")
        return {
            "version": STATE_VERSION,
            "run_dir": str(self.run_dir.path),
            "pid": os.getpid(),
            "host": HOSTNAME,
            "started": self._started,
            "updated": time.time(),
            "closed": self._closed,
            "step": self._step,
            "epoch": self._epoch,
            "ledger_seq": self.ledger.last_seq,
            "callbacks": cb.status() if cb is not None else {},
            "modules": sorted(self.modules),
            "warnings": list(self.warnings),
            "allowed_factories": sorted(self.allowed_factories),
        }

    def _write_state(self) -> None:
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

    def close(self) -> None:
        """Write the final state, close every callback, leave the live-run registry."""
        if self._closed:
            return
        self._closed = True
        # loops usually reuse one env dict: it holds the step the run ended at
        self._step = self._env.get("step", self._step)
        self._epoch = self._env.get("epoch", self._epoch)
        try:
            self._write_state()
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
            self._lock.release()
            self._finalizer.detach()

    def __enter__(self) -> HotKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finalize(ref: weakref.ref[HotKernel], lock: RunDirLock) -> None:
    kernel = ref()
    if kernel is not None:
        kernel.close()
    lock.release()


def _op_from_entry(entry: LedgerEntry) -> Op | None:
    """Rebuild the op a ledger entry applied (None for entries that are not ops)."""
    payload = dict(entry.payload)
    op = "load" if entry.op == "reload" else entry.op  # a reload = a load of the new bytes
    if op not in ("load", "set", "enable", "disable", "unload"):
        return None
    data: dict[str, Any] = {"module": entry.module, "op": op, "id": entry.id}
    for key in ("target", "init", "params", "enabled"):
        if key in payload and payload[key] is not None:
            data[key] = payload[key]
    try:
        return Op.from_dict(data)
    except CommandError:
        return None


def _one_dispatch(
    dispatchers: tuple[Callable[[Env, Sequence[str]], None], ...],
) -> Callable[[Env, Sequence[str]], None]:
    """One callable that dispatches to every module: the module's own dispatch when
    there is one (the usual case: ``apply`` then costs one call), else a loop."""
    if len(dispatchers) == 1:
        return dispatchers[0]

    def dispatch_all(env: Env, events: Sequence[str]) -> None:
        for dispatch in dispatchers:
            dispatch(env, events)

    return dispatch_all


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
