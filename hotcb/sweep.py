"""Hydra multirun sweeps: every job is its own run dir; a sweep is the folder above them.

``python train.py -m lr=0.1,0.01`` gives each job its own Hydra output dir (by default
``multirun/<date>/<time>/<job number>``), so each job has its own kernel, ledger and
state. Hydra writes ``multirun.yaml`` into the sweep dir; hotcb's launch record
(``hotcb.launch.json``) also names it. This module finds the jobs of a sweep and the
latest sweep of this user, for ``hotcb status`` and ``hotcb --sweep DIR cb ...``.

Example:
    >>> import json, os, tempfile
    >>> from pathlib import Path
    >>> sweep = Path(tempfile.mkdtemp())
    >>> (sweep / "multirun.yaml").write_text("{}")
    2
    >>> for n in ("0", "1"):
    ...     (sweep / n).mkdir()
    ...     _ = (sweep / n / "hotcb.state.json").write_text(json.dumps({"closed": True, "step": 9}))
    >>> [(job.name, job.live, job.state["step"]) for job in sweep_jobs(sweep)]
    [('0', False, 9), ('1', False, 9)]
    >>> sweep_of(sweep / "1") == sweep.resolve()
    True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotcb.rundir import LAUNCH_FILE, STATE_FILE, RunDir, read_launch
from hotcb.state import is_live, read_state

__all__ = ["LAUNCH_FILE", "SWEEP_MARKER", "SweepJob", "latest_sweep", "sweep_jobs", "sweep_of"]

#: What Hydra writes into the sweep dir of a multirun.
SWEEP_MARKER = "multirun.yaml"
#: How deep below the sweep dir job dirs are looked for (Hydra's subdir may nest).
MAX_DEPTH = 3


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep: its run dir, name (path below the sweep dir) and state."""

    run_dir: Path
    name: str
    state: dict[str, Any]

    @property
    def live(self) -> bool:
        return is_live(self.state)


def sweep_of(run_dir: str | os.PathLike[str]) -> Path | None:
    """The sweep dir ``run_dir`` is a job of, or None for a single run."""
    path = Path(run_dir).expanduser().resolve()
    sweep_dir = read_launch(RunDir(path).launch).get("sweep_dir")
    if isinstance(sweep_dir, str) and sweep_dir:
        return Path(sweep_dir).expanduser().resolve()
    for parent in list(path.parents)[:MAX_DEPTH]:
        if (parent / SWEEP_MARKER).is_file():
            return parent
    return None


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def sweep_jobs(sweep_dir: str | os.PathLike[str]) -> list[SweepJob]:
    """Every job below ``sweep_dir`` that hotcb ran in (has a state file), in job order."""
    root = Path(sweep_dir).expanduser().resolve()
    jobs: list[SweepJob] = []
    pattern = STATE_FILE
    for depth in range(1, MAX_DEPTH + 1):
        for state_file in root.glob("/".join(["*"] * depth + [pattern])):
            state = read_state(state_file)
            if state is None:
                continue
            run_dir = state_file.parent
            jobs.append(SweepJob(run_dir, run_dir.relative_to(root).as_posix(), state))
    return sorted(jobs, key=lambda job: _natural(job.name))


def latest_sweep() -> Path | None:
    """The sweep of this user's most recent run, if that run was a sweep job.

    Live runs count first: if every live run belongs to one sweep, that sweep.
    """
    from hotcb.runs import live_runs, recent_runs

    live = live_runs()
    if live:
        sweeps = {sweep_of(r.run_dir) for r in live}
        return sweeps.pop() if len(sweeps) == 1 else None
    recent = recent_runs()
    return sweep_of(recent[0].run_dir) if recent else None
