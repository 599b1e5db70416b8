"""``HotController``: the callback registry and its dispatch loop.

The controller holds one slot per callback id (target, init kwargs, hot params,
enabled flag, live instance, last error), applies validated :class:`~hotcb.ops.Op`\\ s to
it, and dispatches events to the enabled callbacks. Dispatch is keyed by event: a
callback that declares the events it handles (its ``events`` attribute, see
:func:`~hotcb.modules.cb.protocol.declared_events`) is called for those only, one that
declares nothing for every event. The map ``event -> handles`` is rebuilt only when the
set changes (load, unload, enable, disable, set, reload, auto-disable). Per step the hot
path is one dict lookup per event and a plain loop over a tuple (no list, dict or bound
method is built), and ``set_params`` is called only when a ``set`` op arrives.

Inside a :class:`~hotcb.kernel.HotKernel` the controller is wrapped by
:class:`~hotcb.modules.cb.module.CallbackModule` and never touches files itself.
Standalone, ``HotController(config_path=..., commands_path=...)`` runs its own small
kernel over those files (ledger, state and captured sources go next to the commands
file):

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> ctl = HotController(commands_path=os.path.join(d, "hotcb.commands.jsonl"), poll_interval=0)
    >>> from hotcb.stream import CommandStream
    >>> _ = CommandStream(os.path.join(d, "hotcb.commands.jsonl")).append({"op": "load", "id": "hb",
    ...     "target": {"kind": "module", "path": "hotcb.modules.cb.callbacks.heartbeat",
    ...                "symbol": "HeartbeatCallback"}, "init": {"every": 2}})
    >>> for step in range(1, 5):
    ...     ctl.apply({"step": step, "log": print}, events=["train_step_end"])
    [hb] train_step_end step=2
    [hb] train_step_end step=4
    >>> ctl.status()["hb"]["params"]
    {'every': 2}
    >>> ctl.close()
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Protocol, TypeVar

from hotcb import interrupts
from hotcb.hotparams import HotParam, ParamError, check_values, declared_params
from hotcb.interrupts import is_user_interrupt
from hotcb.modules.base import OpResult
from hotcb.modules.cb.loader import (
    LoadError,
    Resolved,
    describe_exception,
    instantiate,
    is_sha256,
    named_parameters,
    resolve,
)
from hotcb.modules.cb.protocol import (
    RANK_ZERO_ONLY_KEY,
    Env,
    HotCallback,
    declared_events,
    is_rank_zero_only,
)
from hotcb.ops import CallbackTarget, Op
from hotcb.watchdog import TIMEOUT_KEY, StuckCall, Watch, Watchdog, parse_timeout

__all__ = ["HotController", "OpResult", "Recorder", "init_keys"]

_T = TypeVar("_T")

log = logging.getLogger("hotcb")

#: ``record(op=..., id=..., source=..., decision=..., payload=..., error=..., env=...)``:
#: how the controller reports changes it makes on its own (auto-disable, file reload).
Recorder = Callable[..., Any]

#: A callback's bound ``handle(event, env)``.
Handle = Callable[[str, Env], Any]


class _Runner(Protocol):
    """What a standalone controller needs of the kernel it runs over its files."""

    def apply(self, env: Env, events: Sequence[str]) -> None: ...

    def close(self) -> object: ...


#: what an applied ``enable`` / ``disable`` records as the value it changed (``hotcb undo``)
_WAS_DISABLED = OpResult("applied", details={"previous": {"enabled": False}})
_WAS_ENABLED = OpResult("applied", details={"previous": {"enabled": True}})


@dataclass
class _Slot:
    id: str
    target: CallbackTarget
    init: dict[str, Any]
    params: dict[str, Any]
    enabled: bool
    instance: HotCallback
    error: str | None = None
    sha256: str | None = None
    signature: tuple[int, int] | None = None
    #: the events it declared (None: every event), as of its load / last reload or set
    events: frozenset[str] | None = None
    #: ``_rank_zero_only_`` as set in init / a hot set (None: the class attribute decides)
    rank_zero_override: bool | None = None
    #: the watchdog's wrappers on ``instance`` (only while it has a ``_timeout_``)
    watch: Watch | None = None
    #: the keyword arguments its constructor names (see :func:`init_keys`)
    accepts: frozenset[str] = frozenset()
    #: its declared hot parameters (None: it declares none, ``set_params`` decides)
    hot_params: tuple[HotParam, ...] | None = None
    #: the first line of its class's docstring
    doc: str = ""
    #: the sampled cost of its ``handle`` calls
    cost: CallCost = field(default_factory=lambda: CallCost())

    @property
    def rank_zero_only(self) -> bool:
        return is_rank_zero_only(self.instance, self.rank_zero_override)

    @property
    def timeout(self) -> float | None:
        """``_timeout_`` as set in init / a hot set (None: not watched). Validated by
        :func:`_split_reserved` before it is stored."""
        if TIMEOUT_KEY in self.params:
            return parse_timeout(self.params[TIMEOUT_KEY])
        return parse_timeout(self.init.get(TIMEOUT_KEY))

    def spec(self) -> dict[str, Any]:
        """How to load it back as it is (``payload.previous`` of an ``unload`` or a
        replacing ``load``, for ``hotcb undo``): target, init, hot params, enabled."""
        spec: dict[str, Any] = {
            "target": self.target.to_dict(),
            "init": dict(self.init),
            "params": dict(self.params),
            "enabled": self.enabled,
        }
        if self.sha256:
            spec["sha256"] = self.sha256
        return spec

    def values_before(self, keys: Mapping[str, Any]) -> dict[str, Any]:
        """The effective value of each of ``keys`` before a ``set`` (``payload.previous``,
        for ``hotcb undo``): a hot param, else the init kwarg, else the instance's attribute
        of that name if it holds a plain value. A key with none of these is left out (its
        value before is not known)."""
        out: dict[str, Any] = {}
        for key in keys:
            if key in self.params:
                out[key] = self.params[key]
            elif key in self.init:
                out[key] = self.init[key]
            else:
                value = _plain_attribute(self.instance, key)
                if value is not _UNKNOWN:
                    out[key] = value
        return out

    def record(self) -> dict[str, Any]:
        params = {**self.init, **self.params}
        declared = None
        if self.hot_params is not None:
            declared = [
                {**p.to_dict(), "value": params.get(p.name, p.default)} for p in self.hot_params
            ]
        return {
            "enabled": self.enabled,
            "loaded": True,
            "target": self.target.to_dict(),
            "params": params,
            "init_keys": init_keys(self.init, self.params, self.accepts),
            "error": self.error,
            "sha256": self.sha256,
            "hot_params": declared,
            "init": dict(self.init),
            "events": sorted(self.events) if self.events is not None else None,
            "doc": self.doc,
        }


class CallCost:
    """The sampled cost of one callback's ``handle`` calls: how many were timed, their
    total and the longest (nanoseconds). Only the dispatch after each poll of the
    command file is timed (see :meth:`HotController.sample_costs`)."""

    __slots__ = ("max_ns", "samples", "total_ns")

    def __init__(self) -> None:
        self.samples = 0
        self.total_ns = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        self.samples += 1
        self.total_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def to_dict(self) -> dict[str, Any] | None:
        """``{samples, mean_us, max_us}`` (None before the first sample)."""
        if not self.samples:
            return None
        return {
            "samples": self.samples,
            "mean_us": round(self.total_ns / self.samples / 1e3, 3),
            "max_us": round(self.max_ns / 1e3, 3),
        }


class HotController:
    """Registry + dispatch for hot callbacks.

    Args:
        config_path: standalone only: a desired-state YAML file
            (``callbacks: {id: {target: {kind, path, symbol}, init, params, enabled}}``),
            re-read whenever it changes and reconciled idempotently.
        commands_path: standalone only: the JSONL command file to follow.
        auto_disable_on_error: disable a callback whose ``handle`` (or ``on_attach``) raises
            (default True); when False the error is logged and the callback keeps being
            called. Anything it raises counts, ``SystemExit`` and ``KeyboardInterrupt``
            included; only the user's own Ctrl-C stops training (see
            :mod:`hotcb.interrupts`).
        allowed_factories: target names (``package.module.function``, or
            ``path/to/file.py:function``) of unmarked factories that may be loaded, e.g.
            from code you cannot decorate with
            :func:`~hotcb.modules.cb.protocol.hot_factory`. Keep it short.
        sources_dir: where ``python_file`` sources are captured (the kernel sets this).
        rank: this process's rank; on a rank other than 0, callbacks that are rank-zero-only
            (see :func:`~hotcb.modules.cb.protocol.is_rank_zero_only`) are loaded and kept in
            step but not dispatched to.
        poll_interval: standalone only: seconds between checks of the files (0 = every
            ``apply``).
        debounce_steps, log_path, poll_interval_sec: standalone only: the kernel's options
            of those names (the reference project's controller takes them).
    """

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        commands_path: str | os.PathLike[str] | None = None,
        *,
        auto_disable_on_error: bool = True,
        sources_dir: str | os.PathLike[str] | None = None,
        poll_interval: float = 0.05,
        rank: int = 0,
        allowed_factories: Collection[str] = (),
        debounce_steps: int = 1,
        log_path: str | os.PathLike[str] | None = None,
        poll_interval_sec: float | None = None,
    ) -> None:
        self.auto_disable_on_error = auto_disable_on_error
        self.allowed_factories: frozenset[str] = frozenset(allowed_factories)
        self.rank = rank
        self.sources_dir = Path(sources_dir) if sources_dir is not None else None
        self._slots: dict[str, _Slot] = {}
        #: the hot path: event -> the bound ``handle`` methods of the enabled callbacks
        #: that declared it or declared nothing, in load order ...
        self._by_event: dict[str, tuple[Handle, ...]] = {}
        #: ... and for an event no callback declared, those that declared nothing
        self._every_event: tuple[Handle, ...] = ()
        #: which id each of those belongs to (looked up only when one raises)
        self._handle_ids: dict[Handle, str] = {}
        self._pending_attach: list[str] = []
        #: True when the next dispatch has more to do: attach callbacks, time the calls
        self._pending = False
        #: time the calls of the next dispatch (see :meth:`sample_costs`)
        self._sample = False
        self._record: Recorder | None = None
        self._changed: Callable[[], None] | None = None
        self._kernel: _Runner | None = None
        #: started with the first callback that has a ``_timeout_`` (see :meth:`_watch`)
        self._watchdog: Watchdog | None = None
        #: where the watchdog publishes stuck calls (the kernel's run dir sets it)
        self.stuck_path: Path | None = None
        self._marks_sigint = interrupts.install()
        if config_path is not None or commands_path is not None:
            options = {"debounce_steps": debounce_steps, "log_path": log_path}
            if poll_interval_sec is not None:
                poll_interval = poll_interval_sec
            self._kernel = self._standalone_kernel(
                config_path, commands_path, poll_interval, **options
            )

    # -- standalone mode -------------------------------------------------------------

    def _standalone_kernel(
        self,
        config_path: str | os.PathLike[str] | None,
        commands_path: str | os.PathLike[str] | None,
        poll_interval: float,
        **options: Any,
    ) -> _Runner:
        # imported here: the kernel imports this module (its default module drives a
        # controller), so the controller reaches the kernel only when it is run standalone
        from hotcb.kernel import HotKernel
        from hotcb.modules.cb.module import CallbackModule

        anchor = Path(commands_path if commands_path is not None else config_path)  # type: ignore[arg-type]
        module = CallbackModule(controller=self)
        return HotKernel(
            run_dir=anchor.expanduser().resolve().parent,
            commands_path=commands_path,
            config_path=config_path,
            poll_interval=poll_interval,
            modules={module.name: module},
            register=False,
            **options,
        )

    def apply(self, env: Env, events: Sequence[str]) -> None:
        """Standalone entry point: apply pending changes, then dispatch ``events``."""
        if self._kernel is not None:
            self._kernel.apply(env, events)
        else:
            self.dispatch(env, events)

    # -- wiring (used by CallbackModule) ---------------------------------------------

    def bind(self, record: Recorder | None, changed: Callable[[], None] | None) -> None:
        """Let the owner hear about changes the controller makes on its own."""
        self._record = record
        self._changed = changed

    # -- the hot path -----------------------------------------------------------------

    def dispatch(self, env: Env, events: Sequence[str]) -> None:
        """For each event, call ``handle(event, env)`` on every enabled callback that
        handles it (declared it, or declared nothing), in load order.

        A callback that raises is reported (and auto-disabled, by default: it is not
        called for the events after that one); the others still run and nothing
        propagates to the training loop.
        """
        if self._pending:
            self._dispatch_pending(env, events)
            return
        for event in events:
            for handle in self._by_event.get(event, self._every_event):
                try:
                    handle(event, env)
                except BaseException as exc:  # SystemExit too: only Ctrl-C stops training
                    if is_user_interrupt(exc):
                        raise
                    self._handle_failed(self._handle_ids[handle], event, env, exc)

    def handlers(self, event: str) -> tuple[Handle, ...]:
        """The handles :meth:`dispatch` would call for ``event`` (empty: nobody takes it,
        so an adapter can skip building the env for that hook)."""
        return self._by_event.get(event, self._every_event)

    def declares(self, event: str) -> bool:
        """Whether an enabled callback declared ``event`` (a forwarded trainer hook, say)."""
        return event in self._by_event

    def sample_costs(self) -> None:
        """Time each ``handle`` call of the next dispatch (the cb module asks at every
        poll of the command file, so at most every ``poll_interval``): the per-callback
        cost that ``hotcb status`` shows, measured without a clock read on the steps in
        between."""
        self._sample = self._pending = True

    def _attach_later(self, cb_id: str) -> None:
        self._pending_attach.append(cb_id)
        self._pending = True

    def _dispatch_pending(self, env: Env, events: Sequence[str]) -> None:
        """A dispatch with more to do: the pending ``on_attach`` calls first, then the
        events, timed if a sample was asked for."""
        self._pending = False
        if self._pending_attach:
            self._attach_pending(env)
        if not self._sample:
            self.dispatch(env, events)
            return
        self._sample = False
        for event in events:
            for handle in self._by_event.get(event, self._every_event):
                # its id now: the call may rebuild the handles (a watched call that overran
                # auto-disables its callback when it returns)
                cb_id = self._handle_ids[handle]
                start = perf_counter_ns()
                try:
                    handle(event, env)
                except BaseException as exc:
                    if is_user_interrupt(exc):
                        raise
                    self._handle_failed(cb_id, event, env, exc)
                else:
                    elapsed = perf_counter_ns() - start
                    slot = self._slots.get(cb_id)
                    if slot is not None:
                        slot.cost.add(elapsed)

    def _rebuild(self) -> None:
        """Rebuild the dispatch structures from the slots (the one place that does)."""
        if self._watchdog is not None or any(
            TIMEOUT_KEY in s.init or TIMEOUT_KEY in s.params for s in self._slots.values()
        ):
            self._watch()
        enabled = [
            s for s in self._slots.values() if s.enabled and not (self.rank and s.rank_zero_only)
        ]
        handles = [
            (s.instance.handle if s.watch is None else s.watch.handle, s.events) for s in enabled
        ]
        declared = {event for _, events in handles if events is not None for event in events}
        self._by_event = {
            event: tuple(h for h, events in handles if events is None or event in events)
            for event in sorted(declared)
        }
        self._every_event = tuple(h for h, events in handles if events is None)
        self._handle_ids = {h: s.id for (h, _), s in zip(handles, enabled, strict=True)}
        if self._changed is not None:
            self._changed()

    def _watch(self) -> None:
        """Wrap the methods of the callbacks that have a ``_timeout_`` (and only those);
        start the watchdog with the first such callback, stop it after the last."""
        wanted = [s for s in self._slots.values() if s.timeout is not None]
        if wanted and self._watchdog is None:
            self._watchdog = Watchdog(
                stuck_path=self.stuck_path, on_overrun=self._overran, rank=self.rank
            )
        if self._watchdog is not None:  # unloaded or replaced instances: let them go
            kept = {id(s.watch) for s in self._slots.values() if s.watch is not None}
            for stale in [w for w in self._watchdog.watches if id(w) not in kept]:
                stale.release()
        for slot in self._slots.values():
            budget = slot.timeout
            if slot.watch is not None and (
                budget is None or slot.watch.instance is not slot.instance
            ):
                slot.watch.release()
                slot.watch = None
            if budget is None or self._watchdog is None:
                continue
            if slot.watch is None:
                slot.watch = self._watchdog.watch(slot.instance, slot.id, budget)
            slot.watch.budget = budget
        if not wanted and self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None

    def _overran(self, watch: Watch, stuck: StuckCall, env: Any) -> None:
        """A watched call returned after running past its budget (on the training thread):
        record it, and auto-disable the callback as for an exception."""
        env = env if isinstance(env, dict) else {}
        slot = self._slots.get(watch.id)
        live = slot is not None and slot.instance is watch.instance
        summary = f"stuck: {stuck.describe()}"
        # a slow close (unload, replacement, end of run) leaves nothing to disable
        disable = (
            live
            and stuck.call != "close"
            and self.auto_disable_on_error
            and slot is not None
            and slot.enabled
        )
        if disable:
            action = "auto-disabled"
        elif stuck.call == "close" or not live:
            action = "recorded only: it was being closed"
        else:
            action = "still enabled (auto_disable_on_error is off)"
        message = f"hotcb: callback {watch.id!r} returned after {stuck.describe()}; {action}" + (
            f" (re-enable with: hotcb cb enable {watch.id})" if disable else ""
        )
        log.error("%s", message)
        _tell(env, message)
        if self._record is not None:
            self._record(
                op="stuck",
                id=watch.id,
                source="auto",
                decision="failed",
                error=summary,
                payload={k: v for k, v in stuck.to_dict().items() if k not in ("id", "since")},
                env=env,
            )
        if slot is None or not live:
            return
        payload = {"seconds": round(stuck.seconds, 3), "budget": stuck.budget}
        self._failed(slot, summary, payload, env, disable=disable)

    def _attach_pending(self, env: Env) -> None:
        pending, self._pending_attach = self._pending_attach, []
        for cb_id in pending:
            slot = self._slots.get(cb_id)
            if slot is None or not slot.enabled:
                continue
            try:
                on_attach = getattr(slot.instance, "on_attach", None)
                if on_attach is not None:
                    on_attach(env)
            except BaseException as exc:
                if is_user_interrupt(exc):
                    raise
                self._handle_failed(cb_id, "on_attach", env, exc)

    def _handle_failed(self, cb_id: str, event: str, env: Env, exc: BaseException) -> None:
        slot = self._slots.get(cb_id)
        if slot is None:
            return
        summary = f"{describe_exception(exc)} (in {event})"
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        action = "auto-disabled" if self.auto_disable_on_error else "still enabled"
        message = (
            f"hotcb: callback {cb_id!r} raised in {event} at step {env.get('step')}; {action}"
            + (f" (re-enable with: hotcb cb enable {cb_id})" if self.auto_disable_on_error else "")
        )
        log.error("%s\n%s", message, tb.rstrip())
        _tell(env, f"{message}: {summary}")
        disable = self.auto_disable_on_error and slot.enabled
        self._failed(slot, summary, {"traceback": tb[-4000:]}, env, disable=disable)

    def _failed(
        self, slot: _Slot, summary: str, payload: dict[str, Any], env: Env, *, disable: bool
    ) -> None:
        """Keep ``summary`` as ``slot``'s last failure; with ``disable``, auto-disable it
        and record that (``payload`` says why), else only have the state rewritten."""
        slot.error = summary
        if disable:
            slot.enabled = False
            self._rebuild()
            if self._record is not None:
                self._record(
                    op="disable",
                    id=slot.id,
                    source="auto",
                    decision="applied",
                    error=summary,
                    payload=payload,
                    env=env,
                )
        elif self._changed is not None:
            self._changed()

    # -- applying ops -------------------------------------------------------------------

    def apply_op(self, op: Op, env: Env | None = None, *, sha256: str | None = None) -> OpResult:
        """Apply one validated op. Never raises for a bad op: returns ``failed``.

        ``sha256`` (replay only): load a ``python_file`` target from the source captured
        under that hash instead of the file's current bytes.
        """
        handler = getattr(self, f"_op_{op.op}", None)
        if handler is None:
            return OpResult("failed", f"the cb module has no op {op.op!r}")
        if op.op != "load" and op.id not in self._slots:
            known = ", ".join(sorted(self._slots)) or "none loaded"
            return OpResult("failed", f"unknown callback id {op.id!r} (known: {known})")
        refused = _refused(self._slots.get(op.id), op.op)
        if refused:
            return OpResult("failed", refused)
        try:
            result: OpResult = self._op_load(op, sha256) if op.op == "load" else handler(op)
        except (LoadError, ParamError) as exc:
            return OpResult("failed", str(exc))
        if result.decision == "applied":
            self._rebuild()
        return result

    def _op_load(self, op: Op, sha256: str | None = None) -> OpResult:
        assert op.target is not None  # guaranteed by Op.from_dict
        source = op.target
        if sha256 is not None and self.sources_dir is not None and source.kind == "python_file":
            if not is_sha256(sha256):  # a forged ledger must not name a path outside
                raise LoadError(
                    f"ledger sha256 {sha256!r} is not a sha256; cannot replay {op.id!r}"
                )
            captured = self.sources_dir / f"{sha256}.py"
            if not captured.exists():
                raise LoadError(f"captured source {captured} is missing; cannot replay {op.id!r}")
            source = CallbackTarget("python_file", str(captured), source.symbol)
        resolved = self._resolve(source)
        init, rank_zero = _split_reserved(op.init)
        params, rank_zero_set = _split_reserved(op.params)
        instance = instantiate(resolved.factory, op.id, init)
        try:
            hot_params = _declared(op.id, instance, declared_params, "hot_params")
            if hot_params is not None and params:
                params = check_values(op.id, hot_params, params)
        except (LoadError, ParamError):
            _close_quietly(instance)
            raise
        if params:
            try:
                instance.set_params(**params)
            except BaseException as exc:
                if is_user_interrupt(exc):
                    raise
                _close_quietly(instance)
                return OpResult(
                    "failed", f"set_params on new {op.id!r} raised {type(exc).__name__}: {exc}"
                )
        try:
            events = _declared(op.id, instance, declared_events, "events")
        except LoadError:
            _close_quietly(instance)
            raise
        previous = self._slots.get(op.id)
        enabled = True if op.enabled is None else op.enabled
        accepts = named_parameters(resolved.factory)
        self._slots[op.id] = _Slot(
            id=op.id,
            target=op.target,
            init=dict(op.init),
            params=dict(op.params),
            enabled=enabled,
            instance=instance,
            sha256=resolved.sha256,
            signature=_file_signature(op.target) if source is not op.target else resolved.signature,
            rank_zero_override=rank_zero_set if rank_zero_set is not None else rank_zero,
            events=events,
            accepts=accepts,
            hot_params=hot_params,
            doc=_doc_line(instance),
        )
        if previous is not None:
            _close_quietly(previous.instance)
        if enabled:
            self._attach_later(op.id)
        details: dict[str, Any] = {
            "replaced": previous is not None,
            "init_keys": init_keys(op.init, op.params, accepts),
        }
        if previous is not None:
            details["previous"] = previous.spec()
        if resolved.sha256:
            details["sha256"] = resolved.sha256
            # the reference project's field for the same fact (its recipe tools read it)
            folder = self.sources_dir.name if self.sources_dir is not None else "hotcb.sources"
            details["source_capture"] = {
                "sha256": resolved.sha256,
                "captured_path": f"{folder}/{resolved.sha256}.py",
            }
        return OpResult("applied", details=details)

    def _resolve(self, target: CallbackTarget) -> Resolved:
        return resolve(
            target, sources_dir=self.sources_dir, allowed_factories=self.allowed_factories
        )

    def _op_set(self, op: Op) -> OpResult:
        slot = self._slots[op.id]
        previous = slot.values_before(op.params)
        params, rank_zero = _split_reserved(op.params)
        if slot.hot_params is not None:  # checked before anything is called
            try:
                params = check_values(op.id, slot.hot_params, params)
            except ParamError as exc:
                return OpResult("failed", f"{exc}; nothing was changed")
        try:
            if params:
                slot.instance.set_params(**params)
        except BaseException as exc:
            if is_user_interrupt(exc):
                raise
            return OpResult(
                "failed",
                f"{op.id}.set_params({_kwargs(op.params)}) raised {type(exc).__name__}: {exc}; "
                "previous values kept",
            )
        try:
            slot.events = _declared(op.id, slot.instance, declared_events, "events")
        except LoadError as exc:
            return OpResult(
                "failed",
                f"after {op.id}.set_params({_kwargs(op.params)}): {exc}; "
                "it is still dispatched the events it declared before",
            )
        slot.params.update({**op.params, **params})  # the values as converted
        if rank_zero is not None:
            slot.rank_zero_override = rank_zero
        return OpResult("applied", details={"previous": previous})

    def _op_enable(self, op: Op) -> OpResult:
        slot = self._slots[op.id]
        if slot.enabled:
            return OpResult("ignored", f"{op.id!r} is already enabled")
        slot.enabled = True
        slot.error = None
        self._attach_later(op.id)
        return _WAS_DISABLED

    def _op_disable(self, op: Op) -> OpResult:
        slot = self._slots[op.id]
        if not slot.enabled:
            return OpResult("ignored", f"{op.id!r} is already disabled")
        slot.enabled = False
        return _WAS_ENABLED

    def _op_unload(self, op: Op) -> OpResult:
        slot = self._slots.pop(op.id)
        _close_quietly(slot.instance)
        return OpResult("applied", details={"previous": slot.spec()})

    # -- python_file reloads ------------------------------------------------------------

    def reload_changed_sources(self, env: Env | None = None) -> bool:
        """Reload every ``python_file`` callback whose file changed on disk.

        The new instance gets the same init kwargs and the current hot params; if
        anything fails, the old instance keeps running and the failure is recorded.
        Returns True if anything was reloaded.
        """
        reloaded = False
        for cb_id in self.changed_sources():
            reloaded |= self._reload(self._slots[cb_id], env or {})
        return reloaded

    def changed_sources(self) -> list[str]:
        """Ids of ``python_file`` callbacks whose file changed on disk since it was loaded
        (each reported once per change). For owners that reload through ops, e.g. the
        distributed kernel, which ships the new bytes to every rank."""
        changed = []
        for slot in self._slots.values():
            if slot.signature is None or slot.target.kind != "python_file":
                continue
            sig = _file_signature(slot.target)
            if sig is not None and sig != slot.signature:
                slot.signature = sig
                changed.append(slot.id)
        return changed

    def _reload(self, slot: _Slot, env: Env) -> bool:
        previous_sha = slot.sha256
        try:
            resolved = self._resolve(slot.target)
            if resolved.sha256 == previous_sha:
                return False
            instance = instantiate(resolved.factory, slot.id, _split_reserved(slot.init)[0])
            params = _split_reserved(slot.params)[0]
            if params:
                instance.set_params(**params)
            events = _declared(slot.id, instance, declared_events, "events")
            hot_params = _declared(slot.id, instance, declared_params, "hot_params")
        except BaseException as exc:
            if is_user_interrupt(exc):
                raise
            error = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            log.error(
                "hotcb: reloading %r from %s failed; the previous version keeps running: %s",
                slot.id,
                slot.target.path,
                error,
            )
            if self._record is not None:
                self._record(
                    op="reload",
                    id=slot.id,
                    source="auto",
                    decision="failed",
                    error=error,
                    payload={"target": slot.target.to_dict()},
                    env=env,
                )
            return False
        old = slot.instance
        slot.instance = instance
        slot.sha256 = resolved.sha256
        slot.signature = resolved.signature
        slot.events = events
        slot.accepts = named_parameters(resolved.factory)
        slot.hot_params, slot.doc, slot.cost = hot_params, _doc_line(instance), CallCost()
        slot.error = None
        _close_quietly(old)
        if slot.enabled:
            self._attach_later(slot.id)
        self._rebuild()
        log.info(
            "hotcb: reloaded %r from %s (sha256 %s)",
            slot.id,
            slot.target.path,
            (resolved.sha256 or "")[:12],
        )
        if self._record is not None:
            self._record(
                op="reload",
                id=slot.id,
                source="auto",
                decision="applied",
                payload={
                    "target": slot.target.to_dict(),
                    "sha256": resolved.sha256,
                    "previous_sha256": previous_sha,
                    "init": dict(slot.init),
                    "params": dict(slot.params),
                },
                env=env,
            )
        return True

    # -- introspection -------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Per id: ``enabled``, ``loaded``, ``target``, ``params`` (init overlaid with
        hot params), ``error`` (last failure or None), ``sha256`` (python_file only),
        ``hot_params`` (its declaration, each with its current ``value``; None if it
        declares none), ``init``, ``events`` (None: every event) and ``doc``."""
        return {cb_id: slot.record() for cb_id, slot in self._slots.items()}

    def costs(self) -> dict[str, dict[str, Any] | None]:
        """Per id, the sampled cost of its ``handle`` calls: ``{samples, mean_us, max_us}``
        (None before its first sample). A measurement, not part of :meth:`status`."""
        return {cb_id: slot.cost.to_dict() for cb_id, slot in self._slots.items()}

    def spec(self, cb_id: str) -> dict[str, Any] | None:
        """How ``cb_id`` was loaded: ``target``, ``init``, ``params`` (hot), ``enabled``."""
        slot = self._slots.get(cb_id)
        if slot is None:
            return None
        return {
            "target": slot.target,
            "init": dict(slot.init),
            "params": dict(slot.params),
            "enabled": slot.enabled,
        }

    def note_error(self, cb_id: str, error: str) -> None:
        """Record ``error`` as ``cb_id``'s last failure (e.g. one reported by another rank)."""
        slot = self._slots.get(cb_id)
        if slot is not None:
            slot.error = error
            if self._changed is not None:
                self._changed()

    def load_op(self, cb_id: str) -> Op | None:
        """The op that loads ``cb_id`` as it is now (target, init, hot params, enabled)."""
        spec = self.spec(cb_id)
        if spec is None:
            return None
        return Op(
            op="load",
            id=cb_id,
            target=spec["target"],
            init=spec["init"],
            params=spec["params"],
            enabled=spec["enabled"],
        )

    def get(self, cb_id: str) -> HotCallback | None:
        """The live instance for ``cb_id`` (None if not loaded)."""
        slot = self._slots.get(cb_id)
        return slot.instance if slot is not None else None

    @property
    def ids(self) -> list[str]:
        return list(self._slots)

    def close(self) -> None:
        """Close every callback (and, standalone, the files)."""
        if self._kernel is not None:
            kernel, self._kernel = self._kernel, None
            kernel.close()  # closes this controller through its module
            return
        for slot in self._slots.values():
            _close_quietly(slot.instance)
        self._slots.clear()
        self._by_event, self._every_event, self._handle_ids = {}, (), {}
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        if self._marks_sigint:
            self._marks_sigint = False
            interrupts.release()


_UNKNOWN: Any = object()


def _plain_attribute(instance: Any, name: str) -> Any:
    """``instance.<name>`` if it is a plain value (what a command can carry: None, bool,
    int, float, str, and lists / dicts of those), else :data:`_UNKNOWN`. Reading it may run
    user code (a property): anything it raises means unknown, except the user's Ctrl-C."""
    try:
        value = getattr(instance, name, _UNKNOWN)
    except BaseException as exc:
        if is_user_interrupt(exc):
            raise
        return _UNKNOWN
    return value if _is_plain(value) else _UNKNOWN


def _is_plain(value: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v, depth + 1) for k, v in value.items())
    return False


def _file_signature(target: CallbackTarget) -> tuple[int, int] | None:
    try:
        st = os.stat(target.path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _tell(env: Env, message: str) -> None:
    """Show ``message`` through the loop's ``env["log"]`` sink, if it has one (a sink that
    raises is ignored: it is user code too)."""
    sink = env.get("log")
    if callable(sink):
        try:
            sink(message)
        except BaseException as exc:
            if is_user_interrupt(exc):
                raise


def _close_quietly(instance: Any) -> None:
    """Call the callback's ``close()``, if it has one; anything it raises (``SystemExit``
    too) is logged, except the user's Ctrl-C."""
    try:
        close = getattr(instance, "close", None)
        if close is not None:
            close()
    except BaseException as exc:
        if is_user_interrupt(exc):
            raise
        log.error(
            "hotcb: close() of callback %r raised",
            getattr(instance, "id", "?"),
            exc_info=(type(exc), exc, exc.__traceback__),
        )


def _declared(cb_id: str, instance: Any, read: Callable[[Any], _T], what: str) -> _T:
    """``read(instance)`` (:func:`~hotcb.modules.cb.protocol.declared_events`,
    :func:`~hotcb.hotparams.declared_params`), or a ``LoadError`` naming the callback and
    ``what`` it declares."""
    try:
        return read(instance)
    except TypeError as exc:
        raise LoadError(f"callback {cb_id!r}: {exc}") from exc
    except BaseException as exc:  # e.g. a property that raises; only Ctrl-C goes through
        if is_user_interrupt(exc):
            raise
        raise LoadError(
            f"callback {cb_id!r}: reading its {what} raised {describe_exception(exc)}"
        ) from exc


def _doc_line(instance: Any) -> str:
    """The first line of the docstring of ``instance``'s class ("" if it has none)."""
    doc = getattr(type(instance), "__doc__", None)
    return doc.strip().splitlines()[0].strip() if isinstance(doc, str) and doc.strip() else ""


def _split_reserved(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], bool | None]:
    """``kwargs`` without hotcb's reserved keys, and ``_rank_zero_only_``'s value (None if
    absent). Raises :class:`LoadError` for a bad value of either reserved key
    (``_timeout_`` is read back from the slot's init / params, see ``_Slot.timeout``)."""
    if RANK_ZERO_ONLY_KEY not in kwargs and TIMEOUT_KEY not in kwargs:
        return dict(kwargs), None
    rest = dict(kwargs)
    if TIMEOUT_KEY in rest:
        try:
            parse_timeout(rest.pop(TIMEOUT_KEY))
        except ValueError as exc:
            raise LoadError(f"{exc}; nothing was changed") from None
    if RANK_ZERO_ONLY_KEY not in rest:
        return rest, None
    value = rest.pop(RANK_ZERO_ONLY_KEY)
    if not isinstance(value, bool):
        raise LoadError(f"{RANK_ZERO_ONLY_KEY} must be true or false, got {value!r}")
    return rest, value


def init_keys(
    init: Mapping[str, Any], params: Mapping[str, Any], accepts: Collection[str]
) -> list[str]:
    """Which keys of a callback's effective params are constructor kwargs: those it was
    built with, the hot params its constructor names, and hotcb's reserved keys. The rest
    reach it only through ``set_params`` (exported under ``_set_``, see docs/hydra.md).

    >>> init_keys({"every": 5}, {"window": 9, "armed": True}, {"every", "window"})
    ['every', 'window']
    """
    reserved = (TIMEOUT_KEY, RANK_ZERO_ONLY_KEY)
    merged = {**init, **params}
    return [k for k in merged if k in init or k in accepts or k in reserved]


def _kwargs(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def _refused(slot: _Slot | None, op: str) -> str | None:
    """Why the callback in ``slot`` refuses ``op``: its optional ``refuse_op(op)`` (an
    adopted trainer callback takes only ``set``, see hotcb.adapters.lightning_callbacks)."""
    refuse = getattr(slot.instance, "refuse_op", None) if slot is not None else None
    if refuse is None:
        return None
    try:
        reason = refuse(op)
    except BaseException as exc:
        if is_user_interrupt(exc):
            raise
        return f"{slot.id}.refuse_op({op!r}) raised {describe_exception(exc)}"  # type: ignore[union-attr]
    return str(reason) if reason else None
