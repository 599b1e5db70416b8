"""`hotcb --help` stays cheap: it builds the command tree without the queueing side
(hotcb.ops and PyYAML), let alone torch or Hydra; a command that queues imports them."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import sys
from click.testing import CliRunner
from hotcb.cli import cli
result = CliRunner().invoke(cli, sys.argv[1:])
assert result.exit_code in (0, 1), result.output
heavy = ("yaml", "hotcb.ops", "torch", "hydra", "omegaconf")
print(sorted(m for m in heavy if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("args", "imported"),
    [
        (["--help"], []),
        (["cb", "set", "--help"], []),
        (["--dir", "/nonexistent", "cb", "set", "hb", "every=5"], ["hotcb.ops"]),
        # a built-in is described from its class: the built-ins import no torch
        (["cb", "describe", "grad_stats"], ["hotcb.ops", "yaml"]),
    ],
    ids=["help", "cb-set-help", "cb-set", "cb-describe-builtin"],
)
def test_help_does_not_import_the_queueing_side(args: list[str], imported: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == repr(imported)
