"""`hotcb export-config` says what of the ledger it skipped (docs/reliability.md, crash
safety): a last line cut short by a crash is named on stderr, the export still works."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hotcb.cli import cli
from hotcb.kernel import HotKernel
from hotcb.ops import Op
from tests.helpers import HEARTBEAT


def test_export_names_a_truncated_last_ledger_line(tmp_path: Path) -> None:
    kernel = HotKernel(run_dir=tmp_path / "run", poll_interval=0, register=False)
    kernel.submit(Op(op="load", id="hb", target=HEARTBEAT, init={"every": 10}), source="config")
    kernel.submit(Op(op="set", id="hb", params={"every": 5}), source="external")
    kernel.close()
    torn = b'{"seq": 3, "wall_time": 1.0, "op": "set", "id": "hb", "sou'
    with open(kernel.run_dir.ledger, "ab") as fh:  # what a crash mid-write leaves
        fh.write(torn)
    result = CliRunner().invoke(
        cli, ["--dir", str(kernel.run_dir.path), "export-config", "--format", "overrides"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "hotcb.callbacks.hb.every=5"
    assert result.stderr == (
        f"hotcb: warning: ledger ends with a truncated line ({len(torn)} bytes, a write cut short by a "
        "crash); it was ignored\n"
    )
