"""`hotcb export-config` never overwrites a file unless told to with --force."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hotcb.cli import cli
from tests.security.harness import FinishedRun, hotcb, mode, one_error_line

pytestmark = pytest.mark.subprocess


def test_out_existing_file_is_refused_unless_force(finished_run: FinishedRun) -> None:
    out = finished_run.app / "keep.yaml"
    out.write_text("my own notes\n")
    error = one_error_line(
        hotcb("--dir", str(finished_run.run), "export-config", "--out", str(out))
    )
    assert error == f"hotcb: error: {out}: already exists; pass --force to overwrite it"
    assert out.read_text() == "my own notes\n"
    forced = hotcb("--dir", str(finished_run.run), "export-config", "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "every: 7" in out.read_text() and mode(out) == 0o600


def test_existing_option_name_is_refused_unless_force(finished_run: FinishedRun) -> None:
    option = finished_run.option_dir / "baseline.yaml"
    option.parent.mkdir(parents=True)
    option.write_text("# @package hotcb.callbacks\n{}\n")
    args = ("--dir", str(finished_run.run), "export-config", "--name", "baseline")
    error = one_error_line(hotcb(*args))
    assert error == f"hotcb: error: {option}: already exists; pass --force to overwrite it"
    assert option.read_text() == "# @package hotcb.callbacks\n{}\n"
    # the default name too: a second export of the same run does not replace the first
    first = hotcb("--dir", str(finished_run.run), "export-config")
    assert first.returncode == 0, first.stderr
    one_error_line(hotcb("--dir", str(finished_run.run), "export-config"))
    forced = hotcb(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "every: 7" in option.read_text()


def test_out_symlink_is_not_written_through(finished_run: FinishedRun) -> None:
    victim = finished_run.app / "victim.txt"
    victim.write_text("precious\n")
    link = finished_run.app / "out.yaml"
    link.symlink_to(victim)
    args = ("--dir", str(finished_run.run), "export-config", "--out", str(link))
    one_error_line(hotcb(*args))
    assert hotcb(*args, "--force").returncode == 0
    assert victim.read_text() == "precious\n"
    assert not link.is_symlink() and "every: 7" in link.read_text()


def test_name_ending_in_a_newline_is_refused(finished_run: FinishedRun) -> None:
    result = CliRunner().invoke(
        cli, ["--dir", str(finished_run.run), "export-config", "--name", "mine\n"]
    )
    assert result.exit_code == 1 and "invalid name 'mine\\n'" in result.stderr
    assert not finished_run.option_dir.exists()
