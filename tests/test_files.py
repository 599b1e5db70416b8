"""The one writer of hotcb's private files: atomic replace, or a new file that is never
written over or through a symlink, mode 0600 whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hotcb.files import FILE_MODE, write_private


def _mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


@pytest.mark.parametrize("replace", [True, False], ids=["replace", "new"])
def test_the_file_is_private_whatever_the_umask(tmp_path: Path, replace: bool) -> None:
    target = tmp_path / "out.yaml"
    old = os.umask(0o277)  # would leave 0400 on a file created 0600
    try:
        write_private(target, b"a: 1\n", replace=replace)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"a: 1\n" and _mode(target) == FILE_MODE
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]  # no temp file left


def test_a_new_file_refuses_an_existing_one_and_a_symlink(tmp_path: Path) -> None:
    existing = tmp_path / "keep.yaml"
    existing.write_text("mine\n")
    with pytest.raises(FileExistsError):
        write_private(existing, b"x", replace=False)
    assert existing.read_text() == "mine\n"

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_private(link, b"x", replace=False)
    assert victim.read_text() == "precious\n" and link.is_symlink()

    write_private(link, b"new\n")  # replace: the symlink itself is replaced
    assert victim.read_text() == "precious\n" and not link.is_symlink()
    assert link.read_bytes() == b"new\n"
