"""``hotcb.state.json``: a snapshot of the live callback set, for the CLI.

The training process rewrites it atomically (write a temp file with an unpredictable
name, created exclusively, then ``rename``; see :func:`hotcb.files.write_private`)
whenever the callback set changes and at most every ``state_interval`` seconds
otherwise, so ``hotcb status`` and the CLI's up-front validation never touch the
training process and never see a half-written file.

Shape::

    {"version": 1, "run_dir": "...", "pid": 1234, "host": "node1", "started": 1.7e9,
     "updated": 1.7e9, "state_interval": 1.0, "closed": false, "step": 120, "epoch": 0,
     "callbacks": {"timing": {"enabled": true, "loaded": true,
                              "target": {"kind": "module", "path": "...", "symbol": "..."},
                              "params": {"every": 50, "window": 200}, "error": null}}}

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "hotcb.state.json")
    >>> write_state(p, {"callbacks": {}})
    >>> read_state(p)
    {'callbacks': {}}
"""

from __future__ import annotations

import json
import os
from typing import Any

from hotcb.files import open_regular, write_private
from hotcb.ledger import json_default
from hotcb.liveness import HOSTNAME, process_alive

__all__ = ["HOSTNAME", "is_live", "read_state", "write_state"]

STATE_VERSION = 1


def write_state(path: str | os.PathLike[str], snapshot: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``snapshot`` as JSON (mode 0600)."""
    data = json.dumps(snapshot, indent=2, sort_keys=True, default=json_default).encode("utf-8")
    write_private(path, data)


def read_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last snapshot, or None if there is none (or it cannot be read, or is not a
    regular file: a symlink or FIFO planted at its name is not followed)."""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY), "rb") as fh:
            data = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_live(state: dict[str, Any] | None) -> bool:
    """True if the snapshot's training process is still running (on this host)."""
    if not state or state.get("closed"):
        return False
    pid, host = state.get("pid"), state.get("host")
    if not isinstance(pid, int):
        return False
    # another host's process cannot be checked: the snapshot is trusted
    return process_alive(pid, None if host is None else str(host))
