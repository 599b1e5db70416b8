"""A ledger's ``sha256`` names a file in ``hotcb.sources/``: a forged one must not lead a
resuming kernel to load code from anywhere else."""

from __future__ import annotations

import json
from pathlib import Path

from hotcb.kernel import HotKernel


def test_a_forged_sha256_in_the_ledger_loads_nothing_from_outside_the_sources(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    marker = tmp_path / "ran"
    # code planted outside hotcb.sources/, reachable as sources/../../evil.py
    (tmp_path / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "class Evil:\n"
        "    def handle(self, event, env): pass\n"
        "    def set_params(self, **kw): pass\n"
    )
    entry = {
        "seq": 1, "wall_time": 1.0, "step": 0, "epoch": None, "event": None,
        "module": "cb", "op": "load", "id": "evil", "source": "external",
        "decision": "applied",
        "payload": {
            "target": {"kind": "python_file", "path": str(tmp_path / "gone.py"), "symbol": "Evil"},
            "sha256": "../../evil",
        },
    }  # fmt: skip
    ledger = run / "hotcb.applied.jsonl"
    ledger.write_text(json.dumps(entry) + "\n")
    ledger.chmod(0o600)
    kernel = HotKernel(run_dir=run, register=False)
    try:
        assert not marker.exists()
        assert "evil" not in kernel.modules["cb"].status()
    finally:
        kernel.close()
