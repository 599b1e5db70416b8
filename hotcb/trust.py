"""Who may steer a training run: trust checks on files and directories, and private creation.

A command file, a desired-state YAML, a ledger that a resumed run replays, or a ``.py``
callback is code (or config that loads code) running inside someone's training job, so
hotcb trusts only what nobody else can change:

* **control files** (commands file, desired-state YAML, ledger): refused when **owned by
  another user** or **writable by other users** (``o+w``); accepted with a warning when
  group-writable (:func:`check_control_file`).
* **``.py`` callbacks**: the same rules for the file; and, as ssh does for its key files,
  every directory the OS looks a name up in on the way to it (along the path as given and
  through every symlink, from ``/`` down) must be owned by root or this user and not be
  writable by other users unless it has the sticky bit (like ``/tmp``); every symlink on
  the way must be owned by root or this user. A group-writable directory gives a warning
  (:func:`check_source_file`).
* **the run dir**: the same walk; a directory on it that other users can write to gives a
  loud warning, not a refusal, since every file hotcb reads there is checked on its own
  (:func:`check_run_dir`).
* **writing to a run** (``hotcb cb ...``, ``export-config`` into the app's config dir) is
  for the run dir's owner only (:func:`foreign_owner`).

Each refusal says what is wrong and the command that fixes it. Directories hotcb creates
are private whatever the umask (:func:`make_private_dirs`).

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hotcb.commands.jsonl")
    >>> open(path, "w").close(); os.chmod(path, 0o600)
    >>> check_control_file(path).refused is None
    True
    >>> os.chmod(path, 0o666)
    >>> print(check_control_file(path).refused.split(";")[0])  # doctest: +ELLIPSIS
    refusing .../hotcb.commands.jsonl: it is writable by other users (mode 0666)
    >>> shared = tempfile.mkdtemp(); os.chmod(shared, 0o777)
    >>> print(check_run_dir(shared).warning.split(":")[0])  # doctest: +ELLIPSIS
    run dir ...
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Verdict",
    "check_control_file",
    "check_run_dir",
    "check_source_file",
    "check_source_path",
    "foreign_owner",
    "make_private_dirs",
]

log = logging.getLogger("hotcb")

PRIVATE_DIR_MODE = 0o700
#: More symlinks than this on one path is a loop (the kernel's own limit is 40).
_MAX_LINKS = 40


@dataclass(frozen=True)
class Verdict:
    """``refused``: why the file must not be used (None if it may); ``warning``: a concern."""

    refused: str | None = None
    warning: str | None = None


def _user(uid: int) -> str:
    """``user alice (uid 1000)``, or ``uid 1000`` when the uid has no name."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _owner_problem(path: Path, st: os.stat_result) -> str | None:
    uid = os.geteuid()
    if st.st_uid != uid:
        return (
            f"refusing {path}: it is owned by uid {st.st_uid}, not by this process (uid {uid}); "
            f"fix with: chown {uid} {path} (after checking its content), or remove it"
        )
    return None


def check_control_file(path: str | os.PathLike[str]) -> Verdict:
    """Verdict on a commands file, desired-state YAML or ledger (a missing file is fine)."""
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


@dataclass(frozen=True)
class _Hop:
    """A directory the OS looks a name up in, or a symlink it follows."""

    path: Path
    st: os.stat_result
    link: bool


def _walk(path: Path, *, into: bool = False) -> list[_Hop]:
    """Every directory consulted and every symlink followed to reach ``path``, from ``/``.

    Resolves the path one name at a time, as the kernel does, so a directory reached only
    through a symlink (or through a symlink in a symlink's target) is on the list too; with
    ``into``, ``path`` itself (a directory names are looked up in) as well. Stops at the
    first name that does not exist. The list has no duplicates.
    """
    if not path.is_absolute():
        path = Path.cwd() / path
    current = Path("/")
    hops = [_Hop(current, os.lstat(current), False)]
    parts = list(path.parts[1:])
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            current = current.parent
            continue
        nxt = current / name
        try:
            st = os.lstat(nxt)
        except OSError:
            break
        if stat.S_ISLNK(st.st_mode):
            hops.append(_Hop(nxt, st, True))
            links += 1
            if links > _MAX_LINKS:
                break
            try:
                target = Path(os.readlink(nxt))
            except OSError:
                break
            if target.is_absolute():
                current = Path("/")
                parts[:0] = target.parts[1:]
            else:
                parts[:0] = target.parts
            continue
        current = nxt
        if (parts or into) and stat.S_ISDIR(st.st_mode):
            hops.append(_Hop(current, st, False))
    seen: set[Path] = set()
    distinct = []
    for hop in hops:
        if hop.path not in seen:
            seen.add(hop.path)
            distinct.append(hop)
    return distinct


def _unsafe(hop: _Hop, parent: Path) -> str | None:
    """Why other users could swap what lies behind this directory or symlink, or None."""
    uid = os.geteuid()
    if hop.link:
        where = f"the symlink {hop.path} on its path"
    elif hop.path == parent:
        where = f"its directory {hop.path}"
    else:
        where = f"the directory {hop.path} on its path"
    if hop.st.st_uid not in (0, uid):
        return (
            f"{where} is owned by {_user(hop.st.st_uid)}, neither "
            f"root nor this process (uid {uid}), so that user can change where the path leads; "
            "fix with: move the file where only you can write"
        )
    mode = stat.S_IMODE(hop.st.st_mode)
    if not hop.link and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        return (
            f"{where} is writable by other users (mode {mode:04o}) "
            f"and not sticky, so anyone could replace what the path leads to; fix with: "
            f"chmod o-w {hop.path}, or move the file where only you can write"
        )
    return None


def check_source_path(path: str | os.PathLike[str]) -> Verdict:
    """Verdict on a ``.py`` callback file: each directory and symlink on its way, then the file.

    A missing file is fine here (the loader reports it).
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    hops = _walk(p)  # from / down, before following the last link (that may be refused)
    parent = Path(os.path.realpath(p)).parent
    for hop in hops:
        why = _unsafe(hop, parent)
        if why is not None:
            return Verdict(refused=f"refusing {p}: {why}")
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
            warning=f"{p} is group-writable (mode {mode:04o}): anyone in its group can change "
            f"the callback; chmod g-w {p} if that is not intended"
        )
    for hop in hops:
        dmode = stat.S_IMODE(hop.st.st_mode)
        if not hop.link and dmode & stat.S_IWGRP and not dmode & stat.S_ISVTX:
            return Verdict(
                warning=f"{p} is reached through the group-writable directory {hop.path} "
                f"(mode {dmode:04o}): anyone in its group can replace the callback; "
                f"chmod g-w {hop.path} if that is not intended"
            )
    return Verdict()


_warned: set[str] = set()


def check_source_file(path: str | os.PathLike[str]) -> str | None:
    """Why a ``.py`` callback file must not be loaded, or None if it may.

    See :func:`check_source_path`; a warning is logged (once per process) instead of
    returned.
    """
    verdict = check_source_path(path)
    if verdict.warning and verdict.warning not in _warned:
        _warned.add(verdict.warning)
        log.warning("hotcb: %s", verdict.warning)
    return verdict.refused


def check_run_dir(path: str | os.PathLike[str]) -> Verdict:
    """A warning when other users can add, replace or remove files in the run dir.

    That is: a directory from ``/`` down to the run dir itself (along the path and through
    symlinks) that is writable by other users and not sticky, or owned by a user other
    than root and this one. Never a refusal: the files hotcb reads there are checked one
    by one (owner, mode, no symlinks), and a file another user planted is refused.
    """
    run = Path(path)
    hops = _walk(run, into=True)
    uid = os.geteuid()
    open_dirs: list[str] = []
    foreign: list[str] = []
    for hop in hops:
        mode = stat.S_IMODE(hop.st.st_mode)
        if hop.st.st_uid not in (0, uid):
            foreign.append(f"{hop.path} (owned by {_user(hop.st.st_uid)})")
        elif not hop.link and mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            open_dirs.append(str(hop.path))
    if not open_dirs and not foreign:
        return Verdict()
    where = [f"{d} (writable by other users, not sticky)" for d in open_dirs] + foreign
    fix = f"; fix with: chmod o-w {' '.join(open_dirs)}" if open_dirs else ""
    return Verdict(
        warning=f"run dir {run}: other users can add, replace or remove files in it through "
        f"{', '.join(where)}. hotcb still refuses any control file, ledger or .py callback "
        f"there that is not yours or that others can write{fix}"
    )


def foreign_owner(path: str | os.PathLike[str]) -> str | None:
    """Who owns ``path`` when it is not this process's user (``user alice (uid 1000)``).

    None when this user owns it, or when it cannot be stat'ed.

    >>> import tempfile
    >>> foreign_owner(tempfile.mkdtemp()) is None
    True
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    return None if st.st_uid == os.geteuid() else _user(st.st_uid)


def make_private_dirs(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents, each new one mode 0700 whatever the umask.

    Directories that already exist are left as they are (mode and owner).

    >>> import os, tempfile
    >>> base = tempfile.mkdtemp()
    >>> old = os.umask(0)
    >>> made = make_private_dirs(os.path.join(base, "a", "b"))
    >>> _ = os.umask(old)
    >>> oct(os.stat(made).st_mode & 0o777), oct(os.stat(made.parent).st_mode & 0o777)
    ('0o700', '0o700')
    """
    target = Path(path)
    missing: list[Path] = []
    p = target
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: not ours to change
        # the umask may have taken bits away (or left them): set the mode on what we made
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, PRIVATE_DIR_MODE)
        finally:
            os.close(fd)
    return target
