"""A `.py` callback is loaded only when nobody else can change what its path leads to.

Every directory the OS looks a name up in on the way to the file (along the path as given
and through every symlink, from / down) must be owned by root or this user and not be
writable by others unless sticky; every symlink on the way must be root's or this user's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.ledger import read_ledger
from hotcb.stream import CommandStream
from tests.security.harness import OTHER_UID, give_away, needs_root

CALLBACK = (
    "class Cb:\n    def __init__(self, id='cb'): self.id = id\n"
    "    def handle(self, e, env): pass\n    def set_params(self, **kw): pass\n"
)


def safe_file(tmp_path: Path) -> Path:
    """``safe/cb.py``: a callback in a directory only this user can write."""
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o755)
    src = safe / "cb.py"
    src.write_text(CALLBACK)
    os.chmod(src, 0o644)
    return src


def open_dir(path: Path) -> Path:
    path.mkdir()
    os.chmod(path, 0o777)  # writable by others, no sticky bit
    return path


def through_symlinked_dir_in_open_dir(tmp_path: Path) -> tuple[Path, Path, str]:
    src = safe_file(tmp_path)
    shared = open_dir(tmp_path / "shared")
    (shared / "link").symlink_to(src.parent)
    return shared / "link" / "cb.py", shared, f"chmod o-w {shared}"


def through_symlink_chain(tmp_path: Path) -> tuple[Path, Path, str]:
    # safe/l1 -> shared2/l2 -> safe: the real path and the given path are both clean,
    # but the lookup passes through shared2, where anyone can swap l2
    src = safe_file(tmp_path)
    shared = open_dir(tmp_path / "shared2")
    (shared / "l2").symlink_to(src.parent)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o755)
    (mine / "l1").symlink_to(shared / "l2")
    return mine / "l1" / "cb.py", shared, f"chmod o-w {shared}"


def under_open_ancestor(tmp_path: Path) -> tuple[Path, Path, str]:
    shared = open_dir(tmp_path / "shared")
    sub = shared / "project"
    sub.mkdir(mode=0o755)
    (sub / "cb.py").write_text(CALLBACK)
    return sub / "cb.py", shared, f"chmod o-w {shared}"


def under_dir_of_another_user(tmp_path: Path) -> tuple[Path, Path, str]:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "cb.py").write_text(CALLBACK)
    os.chown(theirs, OTHER_UID, OTHER_UID)  # the file stays ours
    return theirs / "cb.py", theirs, f"owned by user nobody (uid {OTHER_UID})"


def through_symlink_of_another_user(tmp_path: Path) -> tuple[Path, Path, str]:
    src = safe_file(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.chmod(scratch, 0o1777)  # sticky, like /tmp: fine for our own entries
    link = scratch / "cb.py"
    link.symlink_to(src)
    give_away(link)  # but this link is someone else's: they can point it anywhere
    return link, link, "the symlink"


CASES = [
    through_symlinked_dir_in_open_dir,
    through_symlink_chain,
    under_open_ancestor,
    pytest.param(under_dir_of_another_user, marks=needs_root),
    pytest.param(through_symlink_of_another_user, marks=needs_root),
]


@pytest.mark.parametrize("layout", CASES)
def test_load_refused_naming_the_directory_and_the_fix(
    kernel_factory: Any, tmp_path: Path, layout: Callable[[Path], tuple[Path, Path, str]]
) -> None:
    path, culprit, fix = layout(tmp_path)
    kernel = kernel_factory()
    CommandStream(kernel.run_dir.commands).append(
        {
            "op": "load",
            "id": "cb",
            "target": {"kind": "python_file", "path": str(path), "symbol": "Cb"},
        }
    )
    kernel.apply({"step": 1}, ["train_step_end"])
    entry = read_ledger(kernel.run_dir.ledger).entries[-1]
    assert entry.op == "load" and entry.decision == "failed"
    assert f"refusing {path}: " in (entry.error or "")
    assert str(culprit) in (entry.error or "") and fix in (entry.error or "")
    assert kernel.modules["cb"].status().get("cb", {}).get("loaded") is not True


def test_cli_refuses_the_load_up_front(tmp_path: Path) -> None:
    path, shared, _ = through_symlinked_dir_in_open_dir(tmp_path)
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    result = CliRunner().invoke(
        cli, ["--dir", str(run), "cb", "load", "cb", "--file", str(path), "--symbol", "Cb"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"hotcb: error: refusing {path}: the directory {shared}")
    assert f"chmod o-w {shared}" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (run / "hotcb.commands.jsonl").exists()


def test_safe_symlinked_path_loads_and_a_group_writable_dir_warns_once(
    kernel_factory: Any, tmp_path: Path, caplog: Any
) -> None:
    src = safe_file(tmp_path)
    team = tmp_path / "team"
    team.mkdir()
    os.chmod(team, 0o775)
    (team / "cbs").symlink_to(src.parent)
    kernel = kernel_factory()
    stream = CommandStream(kernel.run_dir.commands)
    target = {"kind": "python_file", "path": str(team / "cbs" / "cb.py"), "symbol": "Cb"}
    with caplog.at_level(logging.WARNING, logger="hotcb"):
        for n in range(2):
            stream.append({"op": "load", "id": f"cb{n}", "target": target})
            kernel.apply({"step": n}, ["train_step_end"])
    entries = read_ledger(kernel.run_dir.ledger).entries
    assert [e.decision for e in entries if e.op == "load"] == ["applied", "applied"]
    assert caplog.text.count(f"through the group-writable directory {team}") == 1
