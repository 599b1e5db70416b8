"""The run directory: where one training run and the ``hotcb`` CLI meet.

=============================  ==================================================
``hotcb.commands.jsonl``       input: commands, one JSON object per line (CLI writes)
``hotcb.yaml``                 optional: the desired callback set (``hotcb init`` writes one)
``hotcb.applied.jsonl``        the ledger: one line per processed command
``hotcb.state.json``           the current callback set (rewritten atomically)
``hotcb.sources/<sha256>.py``  captured source of every ``python_file`` load
``hotcb.launch.json``          under Hydra: how the run was launched
``hotcb.stuck.json``           while a watched callback call is past its ``_timeout_``
``hotcb.lock``                 held (``flock``) by the one kernel using the dir
=============================  ==================================================

Example:
    >>> import tempfile
    >>> rd = RunDir(tempfile.mkdtemp()).ensure()
    >>> rd.commands.name, rd.ledger.name, rd.state.name
    ('hotcb.commands.jsonl', 'hotcb.applied.jsonl', 'hotcb.state.json')
    >>> read_launch(rd.launch)  # no launch record: not started by Hydra
    {}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# the file mode and the atomic writer live in hotcb.files; re-exported for existing imports
from hotcb.files import FILE_MODE, open_regular, write_private
from hotcb.trust import make_private_dirs

__all__ = [
    "COMMANDS_FILE",
    "DESIRED_FILE",
    "FILE_MODE",
    "LAUNCH_FILE",
    "LEDGER_FILE",
    "LOCK_FILE",
    "SOURCES_DIR",
    "STATE_FILE",
    "STUCK_FILE",
    "RunDir",
    "read_launch",
    "write_private",
]

COMMANDS_FILE = "hotcb.commands.jsonl"
#: The desired-state YAML the kernel follows when it exists (see hotcb.desired).
DESIRED_FILE = "hotcb.yaml"
LEDGER_FILE = "hotcb.applied.jsonl"
STATE_FILE = "hotcb.state.json"
SOURCES_DIR = "hotcb.sources"
#: Written under Hydra: how the run was launched (argv, overrides, config dir, sweep dir).
LAUNCH_FILE = "hotcb.launch.json"
#: Written by the watchdog while a callback call runs past its ``_timeout_`` (hotcb.watchdog).
STUCK_FILE = "hotcb.stuck.json"
#: Locked by the kernel that owns the run dir; holds its pid and host.
LOCK_FILE = "hotcb.lock"


class RunDir:
    """Paths of one run directory; :meth:`ensure` creates it owner-only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def commands(self) -> Path:
        return self.path / COMMANDS_FILE

    @property
    def desired(self) -> Path:
        return self.path / DESIRED_FILE

    @property
    def ledger(self) -> Path:
        return self.path / LEDGER_FILE

    @property
    def state(self) -> Path:
        return self.path / STATE_FILE

    @property
    def stuck(self) -> Path:
        return self.path / STUCK_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def launch(self) -> Path:
        return self.path / LAUNCH_FILE

    @property
    def sources(self) -> Path:
        return self.path / SOURCES_DIR

    def source_file(self, sha256: str) -> Path:
        return self.sources / f"{sha256}.py"

    def ensure(self) -> RunDir:
        """Create the run dir, its missing parents and ``hotcb.sources/``: each one it
        creates has mode 0700 whatever the umask; existing ones are left as they are."""
        make_private_dirs(self.path)
        make_private_dirs(self.sources)
        return self

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """True if ``path`` resolves to a location inside this run dir."""
        try:
            Path(path).resolve().relative_to(self.path)
        except ValueError:
            return False
        return True


def read_launch(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The launch record at ``path`` (a run dir's :attr:`RunDir.launch`): ``argv``,
    ``cwd``, ``config_name``, ``config_dir``, ``overrides`` and, for a sweep job,
    ``sweep_dir`` and ``job_num``.

    ``{}`` when there is none, or it cannot be read, is not a JSON object or is not a
    regular file (a symlink or FIFO planted at its name is not followed).
    """
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
