"""Finding a run without ``--dir``: the registry of this user's live runs.

Each :class:`~hotcb.kernel.HotKernel` registers itself while it runs (a small JSON file
in ``$HOTCB_HOME/runs/``, default ``~/.cache/hotcb/runs/``) and removes it on close.
Entries of processes that died without closing (SIGKILL, OOM) are recognised as stale
(the pid is gone, or now belongs to a process that started at another time) and
ignored. Closed runs are remembered in ``recent.json`` so read-only commands can fall
back to the most recent run: one started from the current directory first, then the one
last active (dated by the last write of its ledger or state file, so a run that died is
dated by when it died, not by when a later command noticed). :func:`numbered_runs`
numbers them as ``hotcb runs`` shows them, for ``--run N`` (or ``--run PID``). The registry is private: its directories are created mode
0700 and its files 0600 whatever the umask, and a file in it that is not this user's own
(or that others can write) is ignored.

Example:
    >>> import os, tempfile
    >>> os.environ["HOTCB_HOME"] = tempfile.mkdtemp()
    >>> run = tempfile.mkdtemp()
    >>> entry = register_live_run(run)
    >>> [r.run_dir for r in live_runs()] == [os.path.realpath(run)]
    True
    >>> unregister_live_run(entry)
    >>> live_runs(), recent_runs()[0].run_dir == os.path.realpath(run)
    ([], True)
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotcb.errors import HotcbError
from hotcb.files import FILE_MODE, write_private
from hotcb.liveness import HOSTNAME, process_alive, start_ticks
from hotcb.rundir import LEDGER_FILE, STATE_FILE
from hotcb.trust import check_control_file, make_private_dirs

__all__ = [
    "RunEntry",
    "RunNotFound",
    "hotcb_home",
    "last_activity",
    "live_runs",
    "numbered_runs",
    "recent_runs",
    "register_live_run",
    "resolve_run_dir",
    "unregister_live_run",
]

RECENT_LIMIT = 50


class RunNotFound(HotcbError):
    """No run could be chosen; the message says why and how to pick one."""


@dataclass(frozen=True)
class RunEntry:
    """One registered run."""

    run_dir: str
    pid: int
    host: str
    started: float
    start_ticks: int | None = None
    closed: float | None = None
    #: the directory the run was started from (None in entries of older versions)
    cwd: str | None = None

    def started_in(self, directory: str | os.PathLike[str]) -> int:
        """How closely the run belongs to ``directory``: 2 if it was started from there,
        1 if its run dir is inside it, else 0 (true when it belongs at all)."""
        here = os.path.realpath(directory)
        if self.cwd is not None and os.path.realpath(self.cwd) == here:
            return 2
        return 1 if Path(self.run_dir).is_relative_to(here) else 0

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{self.run_dir} (pid {self.pid}, started {when})"


def hotcb_home() -> Path:
    """``$HOTCB_HOME``, else ``$XDG_CACHE_HOME/hotcb``, else ``~/.cache/hotcb``."""
    env = os.environ.get("HOTCB_HOME")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "hotcb"


def _runs_dir() -> Path:
    """``$HOTCB_HOME/runs``, created (with any missing parent) mode 0700 whatever the umask."""
    return make_private_dirs(hotcb_home() / "runs")


def _alive(entry: RunEntry) -> bool:
    return process_alive(entry.pid, entry.host, entry.start_ticks)


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed meanwhile
        return None


def last_activity(entry: RunEntry) -> float:
    """When the run last wrote its ledger or state file (else when it closed or started)."""
    times = [entry.closed or entry.started]
    for name in (LEDGER_FILE, STATE_FILE):
        with contextlib.suppress(OSError):
            times.append(os.stat(os.path.join(entry.run_dir, name)).st_mtime)
    return max(times)


def _write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically with ``data`` as JSON (mode 0600, never through a symlink)."""
    write_private(path, json.dumps(data, indent=1).encode("utf-8"))


def _read_entry(path: Path) -> RunEntry | None:
    """The entry in ``path``; None if unreadable, or not this user's own file (planted)."""
    if check_control_file(path).refused:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunEntry(**data)
    except (OSError, ValueError, TypeError):
        return None


def register_live_run(run_dir: str | os.PathLike[str]) -> Path:
    """Register the calling process as the live run in ``run_dir``; returns the entry file."""
    resolved = str(Path(run_dir).resolve())
    pid = os.getpid()
    entry = RunEntry(
        run_dir=resolved,
        pid=pid,
        host=HOSTNAME,
        started=time.time(),
        start_ticks=start_ticks(pid),
        cwd=_cwd(),
    )
    tag = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:10]
    path = _runs_dir() / f"{pid}-{tag}.json"
    _write_json(path, asdict(entry))
    return path


def unregister_live_run(entry_file: str | os.PathLike[str]) -> None:
    """Remove a live entry and remember the run as recent. Never raises."""
    try:
        path = Path(entry_file)
        entry = _read_entry(path)
        path.unlink(missing_ok=True)
        if entry is not None:
            _remember(RunEntry(**{**asdict(entry), "closed": time.time()}))
    except Exception:
        pass


def _remember(entry: RunEntry) -> None:
    home = make_private_dirs(hotcb_home())
    lock = os.open(home / ".recent.lock", os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        recent = [r for r in _load_recent() if r.run_dir != entry.run_dir]
        recent.append(entry)
        _write_json(home / "recent.json", [asdict(r) for r in recent[-RECENT_LIMIT:]])
    finally:
        os.close(lock)


def _load_recent() -> list[RunEntry]:
    path = hotcb_home() / "recent.json"
    if check_control_file(path).refused:
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [RunEntry(**item) for item in data]
    except (OSError, ValueError, TypeError):
        return []


def live_runs() -> list[RunEntry]:
    """Live runs of this user, oldest first. Stale entries are removed on the way."""
    runs: list[RunEntry] = []
    for path in sorted(_runs_dir().glob("*.json")):
        entry = _read_entry(path)
        if entry is None:
            continue
        if _alive(entry) and Path(entry.run_dir).is_dir():
            runs.append(entry)
        else:  # it died: dated by its last write, not by now
            path.unlink(missing_ok=True)
            _remember(RunEntry(**{**asdict(entry), "closed": last_activity(entry)}))
    return sorted(runs, key=lambda r: r.started)


def recent_runs() -> list[RunEntry]:
    """Runs that have ended (whose run dir still exists), last active first."""
    recent = [r for r in _load_recent() if Path(r.run_dir).is_dir()]
    return sorted(recent, key=last_activity, reverse=True)


def numbered_runs() -> list[RunEntry]:
    """The runs as ``hotcb runs`` numbers them (1, 2, ...): live ones (oldest first),
    then the ended ones, last active first (a live run is not listed twice)."""
    live = live_runs()
    dirs = {r.run_dir for r in live}
    return live + [r for r in recent_runs() if r.run_dir not in dirs]


def _closest(runs: list[RunEntry], here: str) -> list[RunEntry]:
    """The runs that belong most closely to directory ``here`` (started from it, else
    with their run dir inside it, else all), in their order."""
    best = max((r.started_in(here) for r in runs), default=0)
    return [r for r in runs if r.started_in(here) == best]


def _pick(choice: str) -> Path:
    """``--run N`` (the number ``hotcb runs`` shows) or ``--run PID``."""
    runs = numbered_runs()
    try:
        number = int(choice)
    except ValueError:
        raise RunNotFound(
            f"--run takes a number from `hotcb runs` or a run's pid, got {choice!r}"
        ) from None
    if 1 <= number <= len(runs):
        return Path(runs[number - 1].run_dir)
    by_pid = [r for r in runs if r.pid == number]
    if by_pid:
        return Path(by_pid[0].run_dir)
    raise RunNotFound(
        f"no run {number}: `hotcb runs` lists {len(runs)} run(s) (numbers 1-{len(runs)}), "
        "and none has that pid"
        if runs
        else f"no run {number}: there are no runs to choose from (see: hotcb runs)"
    )


def resolve_run_dir(
    explicit: str | os.PathLike[str] | None, *, read_only: bool, pick: str | None = None
) -> Path:
    """The run dir a ``hotcb`` command acts on.

    ``--dir`` if given, else ``--run N|PID`` (``pick``), else ``$HOTCB_RUN_DIR``, else
    the live run (of several, the one started from the current directory); read-only
    commands fall back to the ended runs: those started from the current directory first,
    then the last active. Raises :class:`RunNotFound`.
    """
    if explicit:
        return Path(explicit).expanduser().resolve()
    if pick is not None:
        return _pick(pick)
    env = os.environ.get("HOTCB_RUN_DIR")
    if env:
        return Path(env).expanduser().resolve()
    live = live_runs()
    here = _cwd() or "/"
    if len(live) > 1:
        local = _closest(live, here)
        live = local if len(local) == 1 else live
    if len(live) == 1:
        return Path(live[0].run_dir)
    if len(live) > 1:
        listing = "; ".join(f"{n}: {r.describe()}" for n, r in enumerate(live, start=1))
        raise RunNotFound(
            f"{len(live)} runs are live: {listing}. Pick one with --run N, --dir RUN_DIR or "
            "HOTCB_RUN_DIR=RUN_DIR"
        )
    if read_only:
        recent = recent_runs()  # last active first; those started here before the rest
        candidates = _closest(recent, here)
        if candidates:
            return Path(candidates[0].run_dir)
    raise RunNotFound(
        "no live hotcb run found for this user. Start training with a HotKernel, or pass "
        "--dir RUN_DIR (or set HOTCB_RUN_DIR)"
    )
