"""``Watchdog``: report a callback call that runs past its time budget.

A callback runs on the training thread, so a ``handle`` that loops forever stops
training, and Python cannot stop it from outside: a thread cannot be killed. What can be
done is to *see* it. A callback opts in with the reserved key ``_timeout_`` (seconds) in
its config node, ``--init`` or ``hotcb cb load --timeout``; the controller then wraps that
callback's ``handle``, ``set_params``, ``on_attach`` and ``close`` (and only that
callback's: a callback without ``_timeout_`` is called exactly as before and no watchdog
thread exists). A side thread looks at the watched calls every 50 ms. A call past its
budget is

* logged once through the ``hotcb`` logger with the training thread's stack (from
  :func:`sys._current_frames`), from the side thread;
* written, while it is stuck, to ``hotcb.stuck.json`` in the run dir (only the side thread
  writes that file), which ``hotcb status`` shows;
* handed to ``on_overrun`` on the training thread when it finally returns, so the owner
  can record it in the ledger (the side thread never touches the ledger).

The wrappers are installed as attributes of the callback instance (``set_params``,
``on_attach``, ``close``; ``handle`` too, while the controller dispatches to
:attr:`Watch.handle`) and removed when the budget is removed.

Example:
    >>> import time
    >>> class Slow:
    ...     id = "slow"
    ...     def handle(self, event, env):
    ...         time.sleep(0.3)
    ...     def set_params(self, **kwargs):
    ...         pass
    >>> seen = []
    >>> dog = Watchdog(on_overrun=lambda watch, call, env: seen.append(call), interval=0.01)
    >>> watch = dog.watch(Slow(), "slow", budget=0.05)
    >>> watch.handle("train_step_end", {"step": 3})
    >>> call = seen[0]
    >>> call.id, call.call, call.event, call.step, call.seconds > 0.05
    ('slow', 'handle', 'train_step_end', 3, True)
    >>> any("time.sleep(0.3)" in frame for frame in call.stack)  # seen while it slept
    True
    >>> dog.close()
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import monotonic
from types import CodeType, FrameType
from typing import Any

from hotcb.files import write_private
from hotcb.liveness import HOSTNAME

__all__ = [
    "STUCK_VERSION",
    "TIMEOUT_KEY",
    "StuckCall",
    "StuckReport",
    "Watch",
    "Watchdog",
    "parse_timeout",
    "read_stuck",
]

log = logging.getLogger("hotcb")

#: Reserved init / param key: the callback's time budget per call, in seconds (never
#: passed to the callback). ``null`` (or absent) means not watched.
TIMEOUT_KEY = "_timeout_"

STUCK_VERSION = 1

#: The methods watched on a callback with a budget (those it has).
WATCHED_METHODS: tuple[str, ...] = ("handle", "set_params", "on_attach", "close")

#: At most this many of the innermost frames are kept in a report.
MAX_FRAMES = 20

#: While a call stays stuck, ``hotcb.stuck.json`` is refreshed this often (seconds).
REFRESH_SECONDS = 1.0


def parse_timeout(value: object) -> float | None:
    """The budget ``value`` stands for: a positive, finite number of seconds, or None
    (not watched). Raises ``ValueError`` with a message for a person otherwise.

    >>> parse_timeout(5), parse_timeout(0.5), parse_timeout(None)
    (5.0, 0.5, None)
    >>> parse_timeout(-1)
    Traceback (most recent call last):
    ...
    ValueError: _timeout_ must be a positive number of seconds (or null for no watchdog), got -1
    """
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(
            f"{TIMEOUT_KEY} must be a positive number of seconds (or null for no watchdog), "
            f"got {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class StuckCall:
    """One callback call past its budget: which callback, which call (and event), since
    when, for how long, and the innermost frames of the thread running it."""

    id: str
    call: str
    event: str | None
    #: wall-clock time (``time.time()``) the call started
    since: float
    #: how long it had run when this record was made
    seconds: float
    budget: float
    step: Any = None
    #: innermost frames, outermost first, each ``File "...", line N, in name`` + source
    stack: tuple[str, ...] = ()
    rank: int = 0

    def where(self) -> str:
        """``handle(train_step_end)``, ``set_params()``, ..."""
        return f"{self.call}({self.event or ''})"

    def describe(self, *, running: bool = False) -> str:
        """One line: which call ran (or has been running) how long, against which budget."""
        took = f"has been running {self.seconds:.2f} s" if running else f"ran {self.seconds:.2f} s"
        return f"{self.where()} {took}, over its {self.budget:g} s budget ({TIMEOUT_KEY})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call": self.call,
            "event": self.event,
            "since": self.since,
            "seconds": round(self.seconds, 3),
            "budget": self.budget,
            "step": self.step,
            "stack": list(self.stack),
            "rank": self.rank,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StuckCall:
        """Raises ``ValueError`` for a record that is not one."""
        try:
            stack = data.get("stack") or []
            if not isinstance(stack, list) or not all(isinstance(s, str) for s in stack):
                raise TypeError("stack must be a list of strings")
            return cls(
                id=str(data["id"]),
                call=str(data["call"]),
                event=None if data.get("event") is None else str(data["event"]),
                since=float(data["since"]),
                seconds=float(data["seconds"]),
                budget=float(data["budget"]),
                step=data.get("step"),
                stack=tuple(stack),
                rank=int(data.get("rank") or 0),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a stuck-call record: {exc}") from None


@dataclass(frozen=True)
class StuckReport:
    """The content of ``hotcb.stuck.json``: the calls stuck right now in process ``pid``."""

    pid: int
    host: str
    #: wall-clock time of the last write
    updated: float
    calls: tuple[StuckCall, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STUCK_VERSION,
            "pid": self.pid,
            "host": self.host,
            "updated": self.updated,
            "stuck": [c.to_dict() for c in self.calls],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StuckReport:
        """Raises ``ValueError`` for content that is not a report."""
        if not isinstance(data, Mapping) or not isinstance(data.get("stuck"), list):
            raise ValueError("not a stuck report")
        try:
            return cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                updated=float(data["updated"]),
                calls=tuple(StuckCall.from_dict(c) for c in data["stuck"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stuck report: {exc}") from None


def read_stuck(path: str | os.PathLike[str]) -> StuckReport | None:
    """The report in ``path``, or None if there is none (or it is not a regular file, is
    a symlink, or is not a report).

    >>> read_stuck("/nonexistent/hotcb.stuck.json") is None
    True
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = json.loads(fh.read(1 << 20))
        return StuckReport.from_dict(data)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


#: A call in progress: (method name, event, monotonic start, thread ident, env)
_Call = tuple[str, str | None, float, int, Any]
OnOverrun = Callable[["Watch", StuckCall, Any], None]


class Watch:
    """The watchdog's hold on one callback instance: its budget (change it freely) and
    the wrapped methods. :meth:`release` puts the instance's own methods back."""

    def __init__(self, dog: Watchdog, instance: Any, cb_id: str, budget: float) -> None:
        self.dog = dog
        self.instance = instance
        self.id = cb_id
        self.budget = budget
        #: the call in progress (None between calls); read by the side thread
        self.current: _Call | None = None
        self._installed: list[str] = []
        #: instance attributes our wrappers shadow (put back by release)
        self._shadowed: dict[str, Any] = {}
        self.handle: Callable[[str, Any], Any] = self._wrap_handle(_own(instance.handle))
        for name in WATCHED_METHODS:
            method = getattr(instance, name, None)
            if method is None:
                continue
            wrapper = self.handle if name == "handle" else self._wrap(name, _own(method))
            try:
                attrs = vars(instance)
                if name in attrs:
                    self._shadowed[name] = attrs[name]
                attrs[name] = wrapper
            except TypeError:  # no __dict__ (__slots__): only handle is watched
                if name != "handle":
                    log.warning(
                        "hotcb: %r has no __dict__; its %s() is not watched (%s applies to "
                        "handle only)",
                        cb_id,
                        name,
                        TIMEOUT_KEY,
                    )
                continue
            self._installed.append(name)

    def release(self) -> None:
        """Remove the wrappers from the instance (its methods are its own again)."""
        with contextlib.suppress(TypeError):
            attrs = vars(self.instance)
            for name in self._installed:
                if getattr(attrs.get(name), "__hotcb_watch__", None) is self:
                    if name in self._shadowed:
                        attrs[name] = self._shadowed[name]
                    else:
                        del attrs[name]
        self._installed, self._shadowed = [], {}
        self.dog._forget(self)

    def _wrap_handle(self, method: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
        watch, returned, clock, get_ident = self, self.dog._returned, monotonic, threading.get_ident

        def handle(event: str, env: Any) -> Any:
            if watch.current is not None:  # a watched call calling another one
                return method(event, env)
            call = watch.current = ("handle", event, clock(), get_ident(), env)
            try:
                return method(event, env)
            finally:
                watch.current = None
                if clock() - call[2] > watch.budget:
                    returned(watch, call)

        return _mark(handle, method, self)

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        watch, returned, clock, get_ident = self, self.dog._returned, monotonic, threading.get_ident

        def watched(*args: Any, **kwargs: Any) -> Any:
            if watch.current is not None:
                return method(*args, **kwargs)
            env = args[0] if name == "on_attach" and args else None
            call = watch.current = (name, None, clock(), get_ident(), env)
            try:
                return method(*args, **kwargs)
            finally:
                watch.current = None
                if clock() - call[2] > watch.budget:
                    returned(watch, call)

        return _mark(watched, method, self)


def _own(method: Any) -> Any:
    """``method`` itself, or the method a stale wrapper of ours wraps."""
    if getattr(method, "__hotcb_watch__", None) is not None:
        return method.__wrapped__
    return method


def _mark(wrapper: Callable[..., Any], method: Callable[..., Any], watch: Watch) -> Any:
    wrapper.__name__ = getattr(method, "__name__", wrapper.__name__)
    wrapper.__qualname__ = getattr(method, "__qualname__", wrapper.__qualname__)
    wrapper.__doc__ = getattr(method, "__doc__", None)
    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    wrapper.__hotcb_watch__ = watch  # type: ignore[attr-defined]
    return wrapper


class Watchdog:
    """A side thread that reports watched callback calls running past their budget.

    Args:
        stuck_path: where to publish the calls stuck right now (``hotcb.stuck.json``;
            None: log only, as on ranks other than 0).
        on_overrun: ``on_overrun(watch, stuck_call, env)``, called on the thread that made
            the call, once it returned, for every call that ran past its budget (whether or
            not the side thread saw it). Must not raise (it is guarded).
        interval: seconds between the side thread's looks (a stuck call is reported
            within about this long after its budget ran out).
        rank: this process's rank (in reports).

    The thread starts here and stops at :meth:`close`; build a ``Watchdog`` only when a
    callback has a budget.
    """

    def __init__(
        self,
        *,
        stuck_path: str | os.PathLike[str] | None = None,
        on_overrun: OnOverrun | None = None,
        interval: float = 0.05,
        rank: int = 0,
    ) -> None:
        self.stuck_path = Path(stuck_path) if stuck_path is not None else None
        self.on_overrun = on_overrun
        self.interval = float(interval)
        self.rank = rank
        self._watches: list[Watch] = []
        #: per watch: the call the side thread reported, and its report
        self._seen: dict[Watch, tuple[_Call, StuckCall]] = {}
        self._published: tuple[tuple[str, float], ...] = ()
        self._published_at = 0.0
        self._write_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hotcb-watchdog", daemon=True)
        self._thread.start()

    def watch(self, instance: Any, cb_id: str, budget: float) -> Watch:
        """Wrap ``instance``'s methods (see :class:`Watch`) and start watching its calls."""
        watch = Watch(self, instance, cb_id, budget)
        self._watches.append(watch)
        return watch

    @property
    def watches(self) -> tuple[Watch, ...]:
        """The instances watched now."""
        return tuple(self._watches)

    def _forget(self, watch: Watch) -> None:
        with contextlib.suppress(ValueError):
            self._watches.remove(watch)
        self._seen.pop(watch, None)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the side thread (it clears ``hotcb.stuck.json`` on its way out)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    # -- the side thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._look()
            except Exception:  # a bug here must not end the watching
                log.exception("hotcb: the watchdog failed to check the callbacks")
        self._publish([], force=True)

    def _look(self) -> None:
        now = monotonic()
        stuck: list[StuckCall] = []
        for watch in tuple(self._watches):
            call = watch.current
            if call is None or now - call[2] <= watch.budget:
                continue
            seen = self._seen.get(watch)
            if seen is None or seen[0] is not call:
                report = self._report(watch, call, now)
                if report is None or watch.current is not call:
                    continue  # it returned while we looked
                self._seen[watch] = (call, report)
                log.error(
                    "hotcb: callback %r is stuck: %s%s; hotcb cannot stop it. It is still "
                    "running on the training thread:\n%s",
                    watch.id,
                    report.describe(running=True),
                    f" on rank {self.rank}" if self.rank else "",
                    "\n".join(report.stack) or "(no Python frames)",
                )
            else:
                report = seen[1]
            stuck.append(report)
        self._publish(stuck)

    def _report(self, watch: Watch, call: _Call, now: float) -> StuckCall | None:
        _, _, start, ident, _ = call
        frame = sys._current_frames().get(ident)
        if frame is None:
            return None
        return self._stuck_call(watch, call, now - start, _stack_below_wrapper(frame))

    def _stuck_call(
        self, watch: Watch, call: _Call, seconds: float, stack: tuple[str, ...]
    ) -> StuckCall:
        """What ``call`` of ``watch`` looks like after ``seconds``, with its ``stack``."""
        name, event, _, _, env = call
        return StuckCall(
            id=watch.id,
            call=name,
            event=event,
            since=time.time() - seconds,
            seconds=seconds,
            budget=watch.budget,
            step=_step(env),
            stack=stack,
            rank=self.rank,
        )

    def _publish(self, stuck: list[StuckCall], *, force: bool = False) -> None:
        """Write what is stuck now (on a change, and every REFRESH_SECONDS while stuck);
        remove the file when nothing is."""
        if self.stuck_path is None:
            return
        key = tuple((c.id, c.since) for c in stuck)
        now = monotonic()
        fresh = now - self._published_at < REFRESH_SECONDS
        if key == self._published and (fresh or not stuck) and not force:
            return
        self._published, self._published_at = key, now
        try:
            if not stuck:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.stuck_path)
                return
            wall = time.time()
            calls = tuple(replace(c, seconds=wall - c.since) for c in stuck)
            report = StuckReport(os.getpid(), HOSTNAME, wall, calls)
            write_private(self.stuck_path, json.dumps(report.to_dict(), indent=2).encode())
        except OSError as exc:
            error = f"{exc.strerror or exc}"
            if error != self._write_error:  # once per distinct problem, not once a second
                log.warning("hotcb: cannot write %s: %s", self.stuck_path, error)
            self._write_error = error
        else:
            self._write_error = None

    # -- the training thread -----------------------------------------------------------

    def _returned(self, watch: Watch, call: _Call) -> None:
        """A watched call ran past its budget and returned: hand it to ``on_overrun``."""
        _, _, start, _, env = call
        seconds = monotonic() - start
        seen = self._seen.pop(watch, None)
        stack = seen[1].stack if seen is not None and seen[0] is call else ()
        report = self._stuck_call(watch, call, seconds, stack)
        if self.on_overrun is None:
            return
        try:
            self.on_overrun(watch, report, env)
        except Exception:
            log.exception("hotcb: recording the overrun of %r failed", watch.id)


def _step(env: Any) -> Any:
    return env.get("step") if isinstance(env, dict) else None


def _wrapper_codes() -> frozenset[CodeType]:
    codes = set()
    for factory in (Watch._wrap_handle, Watch._wrap):
        for const in factory.__code__.co_consts:
            if isinstance(const, CodeType):
                codes.add(const)
    return frozenset(codes)


_WRAPPER_CODES = _wrapper_codes()


def _stack_below_wrapper(frame: FrameType) -> tuple[str, ...]:
    """The frames the watched call is running (innermost ``MAX_FRAMES``), outermost
    first, formatted as in a traceback."""
    frames = []
    for f, lineno in traceback.walk_stack(frame):
        if f.f_code in _WRAPPER_CODES:
            break
        frames.append((f, lineno))
    frames = frames[:MAX_FRAMES]
    frames.reverse()
    summary = traceback.StackSummary.extract(iter(frames), lookup_lines=True)
    return tuple(line.strip("\n").lstrip() for line in summary.format())
