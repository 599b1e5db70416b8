"""`hotcb opt set` and `hotcb loss set` under a real `torchrun --nproc_per_node=2`: both
ranks apply the change at the same step, so they never train with different learning
rates or loss weights (each rank logs its own values at every step)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ddp_log import applied_once_on_both
from tests.helpers import REPO, Child, external_entries, hotcb, needs_hotcb, run_state, stop_gate

pytestmark = [pytest.mark.subprocess, needs_hotcb]

RANK_LOG = """
class RankLog:
    def __init__(self, id="ranklog", path=""):
        self.id, self.path, self.file = id, path, None
    def handle(self, event, env):
        if event != "train_step_end":
            return
        if self.file is None:
            self.file = open(f"{self.path}-{env['rank']}.txt", "a")
        g = env["optimizer"].param_groups
        w = env["loss_state"]["weights"]["mse"]
        self.file.write(f"{env['step']} {g[0]['lr']!r} {g[1]['lr']!r} {w!r}\\n")
        self.file.flush()
    def set_params(self, **kw):
        pass
    def close(self):
        if self.file is not None:
            self.file.close()
"""


def rows(base: Path, rank: int) -> list[tuple[int, float, float, float]]:
    out = []
    for line in Path(f"{base}-{rank}.txt").read_text().splitlines():
        step, lr0, lr1, weight = line.split()
        out.append((int(step), float(lr0), float(lr1), float(weight)))
    return out


@pytest.mark.slow(12)
def test_both_ranks_change_lr_and_loss_weight_at_the_same_step(
    tmp_path: Path, spawn: Callable[..., Child]
) -> None:
    run_dir = tmp_path / "ddp"
    source = tmp_path / "ranklog.py"
    source.write_text(RANK_LOG)
    base = tmp_path / "ranklog"
    gate = stop_gate(tmp_path)
    proc = spawn(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            str(REPO / "examples" / "train.py"),
            f"hydra.run.dir={run_dir}",
            "hotcb/callbacks=[]",
            f"+hotcb.callbacks.ranklog._target_='{source}:RankLog'",
            f"+hotcb.callbacks.ranklog.path='{base}'",
            "+hotcb.sync_every=5",
            "scheduler=step",
            "steps=100000",
            "step_sleep=0.002",
            *gate.overrides,
        ],
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    proc.wait_for(lambda: (run_state(run_dir).get("step") or 0) >= 20, timeout=120)
    hotcb("--dir", str(run_dir), "opt", "set", "lr=0.05")
    hotcb("--dir", str(run_dir), "loss", "set", "mse_w=2.0")
    proc.wait_for(lambda: len(external_entries(run_dir)) == 2, timeout=120, what="both applied")
    last = max(e.step or 0 for e in external_entries(run_dir))
    proc.wait_for(lambda: (run_state(run_dir).get("step") or 0) >= last + 60, timeout=120)
    gate.release()
    out = proc.finish()

    lr_at = applied_once_on_both(out, "set optimizer")
    weight_at = applied_once_on_both(out, "set loss_state")
    assert lr_at % 5 == 0 and weight_at % 5 == 0  # at sync points
    rank0, rank1 = rows(base, 0), rows(base, 1)
    common = min(len(rank0), len(rank1))
    assert common > last + 50
    assert rank0[:common] == rank1[:common]  # equal lr and weight on both ranks, every step
    by_step = {r[0]: r for r in rank0}
    # StepLR halves every 50 steps; from the set on it decays from 0.05
    assert by_step[lr_at - 1][1:3] == (0.01 * 0.5 ** ((lr_at - 1) // 50),) * 2
    # set at after_backward of lr_at, before that step's scheduler.step()
    halvings = (lr_at + 1) // 50 - (lr_at - 1) // 50
    assert by_step[lr_at + 1][1] == pytest.approx(0.05 * 0.5**halvings)
    assert by_step[weight_at - 1][3] == 1.0 and by_step[weight_at][3] == 2.0
    entries = external_entries(run_dir)
    assert [(e.module, e.decision, e.payload["world_size"]) for e in entries] == [
        ("opt", "applied", 2),
        ("loss", "applied", 2),
    ]
