"""Whether a file may steer the training process.

A command file, a desired-state YAML or a ``.py`` callback is code (or config that
loads code) running inside someone's training job, so hotcb trusts only files that
nobody else can change:

* refused: a file **owned by another user**, or **writable by other users**
  (``o+w``); for ``.py`` callbacks also a file in a directory that other users can
  write to, unless that directory has the sticky bit (like ``/tmp``);
* accepted with a warning: a **group-writable** file.

Each refusal says what is wrong and the exact command that fixes it.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hotcb.commands.jsonl")
    >>> open(path, "w").close(); os.chmod(path, 0o600)
    >>> check_control_file(path).refused is None
    True
    >>> os.chmod(path, 0o666)
    >>> print(check_control_file(path).refused.split(";")[0])  # doctest: +ELLIPSIS
    refusing .../hotcb.commands.jsonl: it is writable by other users (mode 0666)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Verdict", "check_control_file", "check_source_file"]


@dataclass(frozen=True)
class Verdict:
    """``refused``: why the file must not be used (None if it may); ``warning``: a concern."""

    refused: str | None = None
    warning: str | None = None


def _owner_problem(path: Path, st: os.stat_result) -> str | None:
    uid = os.geteuid()
    if st.st_uid != uid:
        return (
            f"refusing {path}: it is owned by uid {st.st_uid}, not by this process (uid {uid}); "
            f"fix with: chown {uid} {path} (after checking its content), or remove it"
        )
    return None


def check_control_file(path: str | os.PathLike[str]) -> Verdict:
    """Verdict on a commands file or desired-state YAML (a missing file is fine)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        return Verdict()
    problem = _owner_problem(p, st)
    if problem:
        return Verdict(refused=problem)
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return Verdict(
            refused=f"refusing {p}: it is writable by other users (mode {mode:04o}); "
            f"fix with: chmod o-w {p}"
        )
    if mode & stat.S_IWGRP:
        return Verdict(
            warning=f"{p} is group-writable (mode {mode:04o}): anyone in its group can steer "
            f"this run; chmod g-w {p} if that is not intended"
        )
    return Verdict()


def check_source_file(path: str | os.PathLike[str]) -> str | None:
    """Why a ``.py`` callback file must not be loaded, or None if it may."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        return None  # the loader reports a missing file itself
    problem = _owner_problem(p, st)
    if problem:
        return problem
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return f"refusing {p}: it is writable by other users (mode {mode:04o}); fix with: chmod o-w {p}"
    parent = p.resolve().parent
    try:
        pst = os.stat(parent)
    except OSError:
        return None
    pmode = stat.S_IMODE(pst.st_mode)
    if pmode & stat.S_IWOTH and not pmode & stat.S_ISVTX:
        return (
            f"refusing {p}: its directory {parent} is writable by other users (mode {pmode:04o}), "
            f"so anyone could replace the file; fix with: chmod o-w {parent}, or move the file"
        )
    return None
