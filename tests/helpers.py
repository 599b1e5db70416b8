"""What many tests share: the repo root, the heartbeat target in its three spellings, the
real `hotcb` console script, a real training process, condition waits, and a child process
whose output is read as it comes (so it never blocks on a full pipe).

Waiting is always on a condition (``wait_for``) with short polls, never a fixed sleep: a
busy machine makes a run slower, and a test must then wait longer, not fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hotcb.ledger import LedgerEntry, read_ledger
from hotcb.ops import CallbackTarget

__all__ = [
    "HEARTBEAT",
    "HEARTBEAT_CLASS",
    "HEARTBEAT_DICT",
    "HOTCB",
    "REPO",
    "TRAINER",
    "Child",
    "StopGate",
    "external_entries",
    "hotcb",
    "needs_hotcb",
    "run_state",
    "stop_gate",
    "wait_for",
]

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]

#: The built-in heartbeat callback: as a CallbackTarget (``Op(target=...)``), as the JSON
#: a command file holds (``{"op": "load", "target": ...}``), and as a Hydra ``_target_``.
HEARTBEAT = CallbackTarget("module", "hotcb.modules.cb.callbacks.heartbeat", "HeartbeatCallback")
HEARTBEAT_DICT: dict[str, str] = HEARTBEAT.to_dict()
HEARTBEAT_CLASS = f"{HEARTBEAT.path}.{HEARTBEAT.symbol}"


def _console_script() -> str | None:
    """The `hotcb` script of this interpreter's environment (not a slower pyenv-style shim
    found first on PATH), else whatever `hotcb` PATH has."""
    beside = Path(sys.executable).with_name("hotcb")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hotcb")


HOTCB = _console_script()
needs_hotcb = pytest.mark.skipif(HOTCB is None, reason="the hotcb console script is not installed")


def hotcb(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    ok: bool | None = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the real `hotcb` console script in its own process and return what it did.

    ``ok=True`` asserts exit code 0, ``ok=False`` asserts exit code 1 (a user error),
    ``ok=None`` checks nothing. ``env`` is added to this process's environment.
    """
    assert HOTCB is not None, "the hotcb console script is not installed"
    result = subprocess.run(
        [HOTCB, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if ok is not None:
        expected = 0 if ok else 1
        assert result.returncode == expected, (
            f"`hotcb {' '.join(args)}` exited {result.returncode}, expected {expected}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    *,
    interval: float = 0.01,
    what: str | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy,
    and return that. After ``timeout`` seconds fail, naming ``what`` was awaited.

    The predicate may raise (e.g. "the process died") to fail at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", "a condition")
            raise AssertionError(f"timed out after {timeout:g} s waiting for {name}")
        time.sleep(interval)


def external_entries(run_dir: str | os.PathLike[str]) -> list[LedgerEntry]:
    """The ledger entries of ``run_dir`` that came from the command file."""
    ledger = Path(run_dir) / "hotcb.applied.jsonl"
    return [e for e in read_ledger(ledger).entries if e.source == "external"]


def run_state(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``hotcb.state.json`` of ``run_dir``, or {} while there is none."""
    try:
        data = json.loads((Path(run_dir) / "hotcb.state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# Python leaves SIGINT ignored when it starts with SIGINT ignored, and a shell starts its
# background jobs (`pytest ... &`) that way: a child that must stop on Ctrl-C first gets
# the default disposition back, then becomes the real program (same pid).
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


class Child:
    """A process the test started: stdout and stderr are read line by line on a thread
    into :attr:`lines`, so the child never blocks on a full pipe.

    It runs in its own process group, and :meth:`kill` ends the whole group (torchrun,
    Hydra launchers and Lightning start children of their own).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        ctrl_c: bool = False,
    ) -> None:
        argv = [str(a) for a in argv]
        if ctrl_c:
            argv = [sys.executable, "-S", "-c", _DEFAULT_SIGINT, *argv]
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def text(self) -> str:
        """Everything it printed so far."""
        return "\n".join(self.lines)

    def tail(self, chars: int = 4000) -> str:
        return self.text[-chars:]

    def running(self) -> bool:
        return self.proc.poll() is None

    def check_running(self) -> None:
        """Fail at once (with its last output) if the process has ended."""
        if self.proc.poll() is not None:
            self._reader.join(5)
            raise AssertionError(
                f"the process ended (exit code {self.proc.returncode}):\n{self.tail()}"
            )

    def wait_for(self, predicate: Callable[[], T], timeout: float = 60.0, what: str = "") -> T:
        """:func:`wait_for` ``predicate``, failing at once if the process ends first."""

        def seen() -> T:
            value = predicate()
            if value or self.proc.poll() is None:
                return value
            self._reader.join(5)  # it ended: all its output is in, look once more
            value = predicate()
            if not value:
                self.check_running()
            return value

        return wait_for(seen, timeout, what=what or "a condition while the process runs")

    def first_line(self, timeout: float = 60.0) -> str:
        """Its first line of output (waiting for it)."""
        return self.wait_for(lambda: self.lines[0] if self.lines else "", timeout, "a line")

    def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The first line starting with ``prefix`` (waiting for it)."""
        return self.wait_for(
            lambda: next((x for x in list(self.lines) if x.startswith(prefix)), ""),
            timeout,
            what=f"a line starting {prefix!r}",
        )

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the process (start it with ``ctrl_c=True``)."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 180.0, returncode: int | None = 0) -> str:
        """Wait for the process to end by itself; its whole output. A hang is a failure
        (the process is killed), and so is an exit code other than ``returncode``."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout:g} s:\n{self.tail()}") from None
        self._reader.join(10)
        if returncode is not None:
            assert self.proc.returncode == returncode, (
                f"exit code {self.proc.returncode}, expected {returncode}:\n{self.tail()}"
            )
        return self.text

    def kill(self) -> None:
        """SIGKILL the process and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._reader.join(5)


#: A small real training process: a HotKernel in ``argv[1]`` reading its command file at
#: every step (one step about every millisecond, from step ``argv[2]`` on). ``argv[3]``:
#: if > 0, load the heartbeat with that ``every`` first; ``argv[4] == "echo"``: print what
#: callbacks log. Its first line is ``fresh`` or ``resumed`` (it found an earlier ledger).
TRAINER = f"""
import sys, time
from hotcb.kernel import HotKernel
from hotcb.ops import CallbackTarget, Op

run_dir, step, every, echo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
kernel = HotKernel(run_dir=run_dir, poll_interval=0)
if every:
    target = CallbackTarget("module", {HEARTBEAT.path!r}, {HEARTBEAT.symbol!r})
    kernel.submit(Op(op="load", id="heartbeat", init={{"every": every}}, target=target))
print("resumed" if kernel.resumed else "fresh", flush=True)
log = (lambda m: print(m, flush=True)) if echo == "echo" else (lambda m: None)
while True:
    step += 1
    kernel.apply({{"step": step, "log": log}}, ["train_step_end"])
    time.sleep(0.001)
"""


GATE = """
import os
from hotcb.requests import request_stop

class Gate:
    def __init__(self, id="gate", path=""):
        self.id, self.path = id, path
    def handle(self, event, env):
        if event == "train_step_end" and os.path.exists(self.path):
            request_stop(env, "released by the test", by=self.id)
    def set_params(self, **kw):
        pass
"""


@dataclass(frozen=True)
class StopGate:
    """A run of the example app started with ``*gate.overrides`` (a ``gate`` callback
    from a file) asks to stop at its next step once :meth:`release` was called: it lasts
    exactly as long as the test needs it, however slow the machine."""

    file: Path
    overrides: tuple[str, ...]

    def release(self) -> None:
        self.file.touch()


def stop_gate(directory: Path) -> StopGate:
    """Write the gate callback into ``directory``; the Hydra overrides that load it."""
    source = directory / "gate.py"
    source.write_text(GATE)
    file = directory / "release-the-gate"
    return StopGate(
        file=file,
        overrides=(
            f"+hotcb.callbacks.gate._target_='{source}:Gate'",
            f"+hotcb.callbacks.gate.path='{file}'",
        ),
    )
